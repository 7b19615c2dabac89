#!/usr/bin/env python3
"""Python peer for the `tokenize` benchmark: HF `tokenizers` encode_batch on the same corpus.

  .venv/bin/python scripts/bench_hf_tokenize.py CORPUS [--tokenizer PATH] [--batch 1000] [--no-eos]

Loads the same tokenizer.json that wick uses with tokenizers.Tokenizer.from_file, reads the JSONL
corpus, and calls encode_batch(texts, add_special_tokens=False) on batches of --batch documents,
touching .ids of every result and counting one EOS token per document like wick's default (the
EOS is counted, not materialised). encode_batch runs on rayon with all cores.

Prints one JSON line on stdout:
  bytes          size of the corpus file (the same byte count wick's MB/s uses)
  docs, tokens   documents, and tokens including one EOS per document unless --no-eos
  seconds        time spent in encode_batch + touching .ids only  <- the headline number
  mb_per_s, tokens_per_s   from `seconds` (MB = 1e6 bytes)
  cpu_seconds    CPU time of all threads during `seconds` (cpu_seconds/seconds ~ cores used)
  total_seconds  tokenizer load + reading + JSON parsing + encoding (still no output written)
  total_mb_per_s from `total_seconds`

This favours Python: `seconds` excludes reading and parsing the JSONL (done up front, single
threaded, before the clock starts) and neither number includes serialising or writing the ids,
whereas wick's wall time covers reading, parsing, tokenizing and writing JSONL with the ids.
"""
import os

# encode_batch parallelism is disabled if TOKENIZERS_PARALLELISM is false/0/off; force it on.
os.environ["TOKENIZERS_PARALLELISM"] = "true"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tokenizers import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description="HF tokenizers encode_batch throughput on a JSONL corpus")
    ap.add_argument("corpus", help="JSONL file with a \"text\" field per line")
    ap.add_argument("--tokenizer", default=str(ROOT / "testdata/tokenizers/gpt2/tokenizer.json"))
    ap.add_argument("--batch", type=int, default=1000, help="documents per encode_batch call (default 1000)")
    ap.add_argument("--no-eos", action="store_true", help="do not count one EOS token per document")
    args = ap.parse_args()

    t_start = time.perf_counter()
    tok = Tokenizer.from_file(args.tokenizer)
    nbytes = os.path.getsize(args.corpus)
    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]

    t0, c0 = time.perf_counter(), time.process_time()
    tokens = 0
    for i in range(0, len(texts), args.batch):
        for enc in tok.encode_batch(texts[i:i + args.batch], add_special_tokens=False):
            tokens += len(enc.ids)
    t1, c1 = time.perf_counter(), time.process_time()

    if not args.no_eos:
        tokens += len(texts)
    secs, total = t1 - t0, t1 - t_start
    print(json.dumps({
        "tool": "hf-tokenizers-encode_batch",
        "bytes": nbytes,
        "docs": len(texts),
        "tokens": tokens,
        "seconds": round(secs, 4),
        "mb_per_s": round(nbytes / secs / 1e6, 2),
        "tokens_per_s": round(tokens / secs),
        "cpu_seconds": round(c1 - c0, 4),
        "total_seconds": round(total, 4),
        "total_mb_per_s": round(nbytes / total / 1e6, 2),
        "batch": args.batch,
        "eos": not args.no_eos,
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
