#!/usr/bin/env python3
"""Builds testdata/pref/, a small real preference task (reward model / DPO / RLHF), from the SFT
task in testdata/sft/ (made by scripts/make_sft_testdata.py; read its docstring for the sources).

Standard library only, deterministic (one seeded random.Random, --seed, default 20250601; no
clock): the same inputs give the same bytes. Run once from anywhere (paths are relative to this
script); its output is committed:

    python3 scripts/make_pref_testdata.py [--seed 20250601] [--sft testdata/sft] [--out testdata/pref]

Sources, through the SFT task: Chinese records (`songci/<n>`, prompt "写一首《<词牌>》\\n",
completion = the opening lines of a ci of 宋词三百首, npm chinese-poetry 2.0.1, MIT (c) 2016
JackeyGao) and English records (`<play>/<speech>/<line>`, prompt "Continue this speech:\\n" + 2
lines + "\\n", completion = the next 2 lines of the speech, Project Gutenberg Shakespeare,
public domain).

Every SFT record gives exactly one preference record

    {"id": "<sft id>~<kind>", "prompt": <sft prompt>, "chosen": <sft completion>,
     "rejected": <see below>, "kind": <kind>}

where the rejected response is made in one of three ways (kinds):

  * "other": the completion of a different record of the same language and the same split,
    picked at random (one whose completion text differs from chosen; songci/18 and songci/266
    repeat songci/16 and songci/262, so an id check alone is not enough). Fluent, but answers
    another prompt.
  * "shuffled": the true completion with its parts reordered. English: the two lines swapped.
    Chinese: the text is split into clauses at the punctuation 。，、？！ (the marks stay where
    they are, so the result still ends with the original mark); the clause texts are shuffled
    until the result differs from the original. Not possible (so never assigned) when the
    reordering cannot change the text: English lines that are equal, a Chinese completion with
    fewer than two distinct clauses.
  * "truncated": the first half of the true completion, cut at a boundary: candidate cuts are
    the line ends (English) and clause ends (after , ; : . ! ? followed by a space in English;
    after 。，、？！；： in Chinese); the one nearest to half the characters is taken (ties: the
    earlier), if one lies within 25%-75% of the length. Otherwise English cuts at the space
    nearest to half, Chinese at half the characters. Trailing whitespace is stripped; the result
    is non-empty and differs from chosen.

Kinds are spread evenly within each (split, language) group: records are visited in file
order and each gets, among the kinds possible for it, one with the fewest uses so far in its
group (ties broken by the seeded random.Random), so each kind gets about a third.

Checks (the script fails otherwise): no field empty, chosen != rejected everywhere, ids unique.

Splits follow the SFT split exactly: pref/train.jsonl from sft/train.jsonl, pref/heldout.jsonl
from sft/heldout.jsonl (so no held-out poem or speech is in train; but the Chinese prompt is
only the tune name, and 17 of the 30 held-out Chinese prompts have the same tune, so the same
prompt text, as some training record). pref/prompts.jsonl holds the held-out prompts alone,
`{"id": <sft id>, "prompt"}`, one per held-out SFT record, for generation / PPO evaluation.
Records keep the SFT order (Chinese then English, each in source order). A model that cannot
tell chosen from rejected scores a pairwise accuracy (reward(chosen) > reward(rejected)) of 0.5.
Prints the counts per split, language and kind.
"""
import argparse
import collections
import json
import re
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("other", "shuffled", "truncated")
ZH_SPLIT = "。，、？！"
ZH_CLAUSE_END = "。，、？！；："
EN_CLAUSE_END = ",;:.!?"


def language(rec):
    return "zh" if rec["id"].startswith("songci/") else "en"


def shuffled(text, lang, rng):
    """The completion with its parts reordered, or None when reordering cannot change it."""
    if lang == "en":
        lines = text.split("\n")
        if len(lines) != 2:
            raise ValueError(f"English completion without exactly 2 lines: {text!r}")
        if lines[0] == lines[1]:
            return None
        return lines[1] + "\n" + lines[0]
    # Chinese: clause texts between the marks are permuted, the marks stay in place.
    parts = re.split(f"([{ZH_SPLIT}])", text)
    texts, marks = parts[0::2], parts[1::2]  # len(texts) == len(marks) + 1
    slots = [i for i, t in enumerate(texts) if t]
    if len({texts[i] for i in slots}) < 2:
        return None
    for _ in range(1000):
        order = [texts[i] for i in slots]
        rng.shuffle(order)
        new = list(texts)
        for i, t in zip(slots, order):
            new[i] = t
        out = "".join(t + m for t, m in zip(new, marks + [""]))
        if out != text:
            return out
    raise RuntimeError(f"could not reorder {text!r}")


def truncated(text, lang):
    """The first half of the completion, cut at a line/clause boundary when possible."""
    n = len(text)
    cuts = []
    for i, c in enumerate(text):
        if lang == "en":
            if c == "\n":
                cuts.append(i)
            elif c in EN_CLAUSE_END and i + 1 < n and text[i + 1] == " ":
                cuts.append(i + 1)
        elif c in ZH_CLAUSE_END and i + 1 < n:
            cuts.append(i + 1)
    cuts = [p for p in cuts if n / 4 <= p <= 3 * n / 4]
    if cuts:
        pos = min(cuts, key=lambda p: (abs(p - n / 2), p))
        how = "boundary"
    elif lang == "en" and " " in text:
        spaces = [i for i, c in enumerate(text) if c == " "]
        pos = min(spaces, key=lambda p: (abs(p - n / 2), p))
        how = "space"
    else:
        pos = n // 2
        how = "chars"
    out = text[:pos].rstrip()
    if not out or out == text:
        raise ValueError(f"bad truncation of {text!r}")
    return out, how


def build(recs, rng, stats):
    """One preference record per SFT record of one split."""
    by_lang = collections.defaultdict(list)
    for r in recs:
        by_lang[language(r)].append(r)
    uses = {lang: collections.Counter({k: 0 for k in KINDS}) for lang in by_lang}
    out = []
    for r in recs:
        lang = language(r)
        chosen = r["completion"]
        # Candidates for each kind; "shuffled" only where reordering changes the text.
        shuf = shuffled(chosen, lang, rng)
        possible = [k for k in KINDS if k != "shuffled" or shuf is not None]
        least = min(uses[lang][k] for k in possible)
        kind = rng.choice([k for k in possible if uses[lang][k] == least])
        uses[lang][kind] += 1
        if kind == "other":
            pool = [o for o in by_lang[lang] if o["id"] != r["id"] and o["completion"] != chosen]
            rejected = rng.choice(pool)["completion"]
        elif kind == "shuffled":
            rejected = shuf
        else:
            rejected, how = truncated(chosen, lang)
            stats[f"truncated cut ({lang}): {how}"] += 1
        if shuf is None:
            stats[f"shuffled impossible ({lang})"] += 1
        rec = {"id": f"{r['id']}~{kind}", "prompt": r["prompt"], "chosen": chosen,
               "rejected": rejected, "kind": kind}
        if not all(rec.values()) or rec["chosen"] == rec["rejected"]:
            raise ValueError(f"bad record {rec}")
        out.append(rec)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20250601)
    ap.add_argument("--sft", type=Path, default=ROOT / "testdata" / "sft")
    ap.add_argument("--out", type=Path, default=ROOT / "testdata" / "pref")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    stats = collections.Counter()
    splits = {}
    for name in ("train", "heldout"):
        with open(args.sft / f"{name}.jsonl", encoding="utf-8") as f:
            recs = [json.loads(line) for line in f if line.strip()]
        splits[name] = (recs, build(recs, rng, stats))

    ids = [p["id"] for _, prefs in splits.values() for p in prefs]
    assert len(ids) == len(set(ids)), "duplicate ids"

    args.out.mkdir(parents=True, exist_ok=True)

    def write(path, rows):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    for name, (_, prefs) in splits.items():
        write(args.out / f"{name}.jsonl", prefs)
    write(args.out / "prompts.jsonl",
          [{"id": r["id"], "prompt": r["prompt"]} for r in splits["heldout"][0]])

    counts = collections.Counter()
    for name, (_, prefs) in splits.items():
        for p in prefs:
            lang = language(p)
            counts[(name, lang, p["kind"])] += 1
    print(f"{'split':8} {'lang':4} " + " ".join(f"{k:>9}" for k in KINDS) + f" {'all':>6}")
    for name in splits:
        for lang in ("zh", "en"):
            row = [counts[(name, lang, k)] for k in KINDS]
            print(f"{name:8} {lang:4} " + " ".join(f"{c:>9}" for c in row) + f" {sum(row):>6}")
    train_prompts = {r["prompt"] for r in splits["train"][0]}
    shared = [r["id"] for r in splits["heldout"][0] if r["prompt"] in train_prompts]
    print(f"held-out prompts whose text is also a training prompt: {len(shared)}"
          + (f" ({', '.join(shared)})" if shared else ""))
    for k, v in sorted(stats.items()):
        print(f"{k}: {v}")
    for f in ("train.jsonl", "heldout.jsonl", "prompts.jsonl"):
        print(f"{args.out / f}: {(args.out / f).stat().st_size} bytes")


if __name__ == "__main__":
    main()
