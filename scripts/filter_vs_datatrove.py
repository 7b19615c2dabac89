#!/usr/bin/env python3
"""Compares `filter` with datatrove's filters, one rule family at a time, on a JSONL corpus.

For each family (Gopher quality, Gopher repetition, C4 as in datatrove's FineWeb recipe, FineWeb)
it runs datatrove's filter class with its defaults and `filter --no-clean` with only that
family on, and reports how many documents get the same decision (kept, or dropped with the
corresponding reason) and, for C4, the same kept text.

Needs `pip install datatrove spacy` (datatrove 0.10 splits English words with spaCy's blank
English tokenizer); not part of `make test`. Usage:

    cargo build --release -p filter
    python3 scripts/filter_vs_datatrove.py testdata/english.jsonl
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

BIN = Path(__file__).resolve().parent.parent / "target/release/filter"
FAMILIES = ["gopher_repetition", "gopher_quality", "c4", "fineweb"]
# datatrove's reason -> filter's
REASONS = {
    "gopher_short_doc": "gopher_quality:min_words",
    "gopher_long_doc": "gopher_quality:max_words",
    "gopher_below_avg_threshold": "gopher_quality:min_mean_word_length",
    "gopher_above_avg_threshold": "gopher_quality:max_mean_word_length",
    "gopher_too_many_hashes": "gopher_quality:hash_ratio",
    "gopher_too_many_ellipsis": "gopher_quality:ellipsis_ratio",
    "gopher_too_many_bullets": "gopher_quality:bullet_lines",
    "gopher_too_many_end_ellipsis": "gopher_quality:ellipsis_lines",
    "gopher_below_alpha_threshold": "gopher_quality:alpha_words",
    "gopher_enough_stop_words": "gopher_quality:stop_words",
    "lorem_ipsum": "c4:lorem_ipsum",
    "curly_bracket": "c4:curly_bracket",
    "too_few_sentences": "c4:too_few_sentences",
}


def reference(family, text):
    f = {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "c4": C4QualityFilter(filter_no_terminal_punct=False),
        "fineweb": FineWebQualityFilter(),
    }[family]
    doc = Document(text=text, id="0")
    r = f.filter(doc)
    if r is True:
        return "keep", doc.text
    reason = r[1]
    if family == "gopher_repetition":
        reason = "gopher_repetition:" + reason.replace("duplicated_", "dup_").replace("_n_grams", "_gram")
    elif family == "fineweb":
        reason = "fineweb:" + reason
    return REASONS.get(reason, reason), None


def ours(family, docs):
    """{index: (decision, kept text)} from the filter binary with only `family` on."""
    off = [f"--no-{f.replace('_', '-')}" for f in FAMILIES if f != family]
    with tempfile.TemporaryDirectory() as tmp:
        inp, rej = Path(tmp) / "in.jsonl", Path(tmp) / "rej.jsonl"
        inp.write_text("".join(json.dumps({"i": i, "text": d["text"]}) + "\n" for i, d in enumerate(docs)))
        kept = subprocess.run(
            [BIN, "--no-clean", "-q", "--rejected", rej, *off, inp],
            check=True, capture_output=True, text=True,
        ).stdout
        out = {}
        for line in kept.splitlines():
            r = json.loads(line)
            out[r["i"]] = ("keep", r["text"])
        for line in rej.read_text().splitlines():
            r = json.loads(line)
            out[r["i"]] = (r["filter_reason"], None)
    return out


def main():
    docs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
    for family in FAMILIES:
        got = ours(family, docs)
        want = [reference(family, d["text"]) for d in docs]
        same = sum(got[i][0] == w[0] for i, w in enumerate(want))
        kept = [i for i, w in enumerate(want) if w[0] == "keep"]
        same_text = sum(got[i] == want[i] for i in kept)
        print(f"{family:18} same decision {same}/{len(docs)}, same kept text {same_text}/{len(kept)}")
        for i, w in enumerate(want):
            if got[i][0] != w[0]:
                print(f"  doc {i}: datatrove {w[0]}, filter {got[i][0]}")


if __name__ == "__main__":
    main()
