#!/usr/bin/env python3
"""Builds the benchmark corpus: a large JSONL file of real text, deterministically.

  python3 scripts/make_bench_corpus.py [OUT_PATH] [--mb 64]

OUT_PATH defaults to bench-data/corpus.jsonl (git-ignored). Each line is {"id": ..., "text": ...}.
Standard library only; no network. If OUT_PATH already exists with the size this --mb
produces, nothing is done (the output is deterministic, so rebuilding would give the same bytes);
a file of another size is rebuilt (--force rebuilds regardless).

The text is the ~1 MB of real documents in testdata/english.jsonl (Shakespeare) and
testdata/chinese.jsonl (Song ci, Song and Tang poems), repeated until the size is reached. So that
repeats are not byte-identical documents (which would flatter any per-document or per-line cache),
every repeat ("round") re-cuts the same real text into different documents:

  English   the scenes/sonnets are split into paragraphs (blank-line separated blocks). Each round
            shuffles the order of the works (plays, sonnets), keeps the paragraphs of each work in
            their real order, rotates the start of the stream by a random number of paragraphs and
            cuts it into documents of a random 2..60 paragraphs, so document boundaries differ.
  Chinese   each round shuffles the poems and groups 2..8 consecutive ones into a document.

English and Chinese documents are interleaved at random (in proportion to their sizes) so the
file has no long single-language stretches. Every word on every line is real text; only
document boundaries and order change between rounds. A smaller --mb gives a byte prefix of the
larger corpus, since rounds are generated identically and writing stops at the size.
"""
import argparse
import json
import os
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
PARA_SPLIT = re.compile(r"\n[ \t]*\n+")


def load(name):
    with open(ROOT / "testdata" / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def english_works(docs):
    """[(work name, [paragraph, ...])] in file order; a work is one play or the sonnets."""
    works = {}
    for d in docs:
        name = d.get("source") or d["id"].split("/")[0]
        paras = [p.strip("\n") for p in PARA_SPLIT.split(d["text"]) if p.strip()]
        works.setdefault(name, []).extend(paras)
    return list(works.items())


def english_round(works, rng):
    order = list(works)
    rng.shuffle(order)
    stream = [p for _, paras in order for p in paras]
    shift = rng.randrange(len(stream))
    stream = stream[shift:] + stream[:shift]
    out, i = [], 0
    while i < len(stream):
        n = rng.randint(2, 60)
        out.append("\n\n".join(stream[i:i + n]))
        i += n
    return out


def chinese_round(poems, rng):
    order = list(poems)
    rng.shuffle(order)
    out, i = [], 0
    while i < len(order):
        n = rng.randint(2, 8)
        out.append("\n\n".join(order[i:i + n]))
        i += n
    return out


def interleave(a, b, rng):
    """Merges two lists at random, keeping each list's order, in proportion to what is left."""
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        left_a, left_b = len(a) - i, len(b) - j
        if rng.randrange(left_a + left_b) < left_a:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "bench-data" / "corpus.jsonl"),
                    help="output JSONL path (default: bench-data/corpus.jsonl)")
    ap.add_argument("--mb", type=float, default=64, help="target size in MiB (default 64)")
    ap.add_argument("--force", action="store_true", help="rebuild even if OUT exists and is big enough")
    args = ap.parse_args()
    if args.mb <= 0:
        ap.error("--mb must be positive")
    target = int(args.mb * MIB)
    out = Path(args.out)

    # Writing stops right after the line that reaches the target, and no line is near 1 MiB, so a
    # file built by this script for this --mb is in [target, target + 1 MiB); reuse exactly that.
    if not args.force and out.is_file() and target <= out.stat().st_size < target + MIB:
        print(f"corpus: reusing {out} ({out.stat().st_size / MIB:.1f} MiB)", file=sys.stderr)
        return

    works = english_works(load("english.jsonl"))
    poems = [d["text"].strip() for d in load("chinese.jsonl") if d["text"].strip()]
    if not works or not poems:
        sys.exit("make_bench_corpus: testdata/english.jsonl or testdata/chinese.jsonl is empty")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    written, docs, rnd = 0, 0, 0
    with open(tmp, "wb") as f:
        while written < target:
            rng = random.Random(f"wick-bench-corpus/round/{rnd}")
            for n, text in enumerate(interleave(english_round(works, rng), chinese_round(poems, rng), rng)):
                line = (json.dumps({"id": f"bench/{rnd}/{n}", "text": text}, ensure_ascii=False) + "\n").encode("utf-8")
                f.write(line)
                written += len(line)
                docs += 1
                if written >= target:
                    break
            rnd += 1
    os.replace(tmp, out)
    print(f"corpus: wrote {out}: {docs} documents, {written} bytes ({written / MIB:.1f} MiB), {rnd} rounds",
          file=sys.stderr)


if __name__ == "__main__":
    main()
