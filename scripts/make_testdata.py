#!/usr/bin/env python3
"""Builds testdata/*.jsonl from the raw public-domain texts in testdata/raw/.

Run once from the repository root; its output is committed. Standard library only.

  english.jsonl  one document per scene of five Shakespeare plays (Project Gutenberg modern
                 spelling; hamlet_gut_f.txt is the First Folio spelling of the same play) and one per sonnet
  chinese.jsonl  one document per poem: 300 Song ci (宋词三百首), 100 Song poems and 300 Tang poems
"""
import json
import re
from pathlib import Path

RAW = Path("testdata/raw")
SCENE = re.compile(r"^(scene|SCENE|Scene)\s+[0-9IVXivx]+\b")
ROMAN = re.compile(r"^[IVXLC]+\s*$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def split_play(name, text):
    docs, cur, n = [], [], 0
    for line in text.splitlines():
        if SCENE.match(line) and cur:
            docs.append(("\n".join(cur).strip(), n))
            cur, n = [], n + 1
        cur.append(line)
    docs.append(("\n".join(cur).strip(), n))
    return [{"id": f"{name}/{i}", "source": name, "text": t} for t, i in docs if t]


def split_sonnets(text):
    docs, cur, num = [], [], None
    for line in text.splitlines():
        if ROMAN.match(line):
            if num and cur:
                docs.append({"id": f"sonnets/{num}", "source": "sonnets_gut",
                             "text": "\n".join(cur).strip()})
            num, cur = line.strip(), []
        elif num:
            cur.append(line)
    if num and cur:
        docs.append({"id": f"sonnets/{num}", "source": "sonnets_gut", "text": "\n".join(cur).strip()})
    return docs


def fortunes(name):
    out = []
    for i, rec in enumerate((RAW / "zh" / name).read_text(encoding="utf-8").split("\n%\n")):
        text = ANSI.sub("", rec).strip()
        if text:
            out.append({"id": f"{name}/{i}", "source": name, "text": text})
    return out


def main():
    english = []
    for path in sorted((RAW / "shakespeare").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        english += split_sonnets(text) if path.stem == "sonnets_gut" else split_play(path.stem, text)
    chinese = []
    for i, ci in enumerate(json.loads((RAW / "zh" / "songci300.json").read_text(encoding="utf-8"))):
        text = f"{ci['rhythmic']}\n{ci['author']}\n" + "\n".join(ci["paragraphs"])
        chinese.append({"id": f"songci300/{i}", "source": "songci300", "text": text})
    chinese += fortunes("song100") + fortunes("tang300")
    for name, docs in (("english", english), ("chinese", chinese)):
        with open(f"testdata/{name}.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        print(name, len(docs), "documents")


if __name__ == "__main__":
    main()
