#!/usr/bin/env python3
"""Writes testdata/fixtures/llmc/: a tiny tokenized corpus and the same tokens as llm.c .bin shards.

  docs.jsonl     {"id": doc id, "ids": [...]} for the first 12 docs of testdata/english.jsonl and
                 the first 8 of testdata/chinese.jsonl; ids are the doc's GPT-2 ids (Hugging Face
                 `tokenizers`, add_special_tokens=False) cut to at most 400 tokens, then 50256 (EOS).
  gpt2_u16.bin   all docs' ids concatenated in file order, in llm.c's GPT-2 format
                 (magic 20240520, version 1, uint16 tokens).
  gpt2_u32.bin   the same tokens in llm.c's LLaMA-3 format (magic 20240801, version 7, uint32 tokens).
  expected.json  {"num_tokens", "num_docs", "doc_starts", "token_sum", "eos", "vocab_size"}.

The .bin layout follows write_datafile() in karpathy/llm.c dev/data/data_common.py: a header of
256 int32 (header[0] = magic, header[1] = version, header[2] = number of tokens, the rest zero),
then the tokens; no padding, no trailer. llm.c writes with native-endian numpy dtypes; here the
dtypes are spelled little-endian, which gives the same bytes on the little-endian hosts llm.c runs on.

This script was run once, from the repository root, with tokenizers==0.23.3; its output is
committed and the Rust tests need no Python.
  .venv/bin/python scripts/gen_llmc_fixture.py
"""
import json
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import Tokenizer

TOKENIZER = Path("testdata/tokenizers/gpt2/tokenizer.json")
OUT = Path("testdata/fixtures/llmc")
EOS = 50256
VOCAB_SIZE = 50257
MAX_TOKENS = 400  # per doc, before EOS

# dev/data/data_common.py HEADERS_INFO
HEADERS_INFO = {
    "gpt-2": {"magic": 20240520, "version": 1, "token_dtype": np.dtype("<u2")},
    "llama-3": {"magic": 20240801, "version": 7, "token_dtype": np.dtype("<u4")},
}


def write_datafile(filename, toks, model_desc):
    """Same steps as llm.c's write_datafile: 256-int32 header, then the token array."""
    assert len(toks) < 2**31, "token count too large"
    info = HEADERS_INFO[model_desc]
    assert all(0 <= t <= np.iinfo(info["token_dtype"]).max for t in toks), "token out of range"
    header = np.zeros(256, dtype="<i4")
    header[0] = info["magic"]
    header[1] = info["version"]
    header[2] = len(toks)
    toks_np = np.array(toks, dtype=info["token_dtype"])
    with open(filename, "wb") as f:
        f.write(header.tobytes())
        f.write(toks_np.tobytes())
    print(f"wrote {len(toks):,} tokens to {filename} ({1024 + len(toks) * toks_np.itemsize:,} bytes, {model_desc})")


def first_docs(path, n):
    with open(path, encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


def main():
    tok = Tokenizer.from_file(str(TOKENIZER))
    docs = first_docs("testdata/english.jsonl", 12) + first_docs("testdata/chinese.jsonl", 8)
    records = []
    for d in docs:
        ids = tok.encode(d["text"], add_special_tokens=False).ids[:MAX_TOKENS] + [EOS]
        records.append({"id": d["id"], "ids": ids})

    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "docs.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    tokens, doc_starts = [], []
    for r in records:
        doc_starts.append(len(tokens))
        tokens.extend(r["ids"])
    write_datafile(OUT / "gpt2_u16.bin", tokens, "gpt-2")
    write_datafile(OUT / "gpt2_u32.bin", tokens, "llama-3")

    expected = {
        "num_tokens": len(tokens),
        "num_docs": len(records),
        "doc_starts": doc_starts,
        "token_sum": sum(tokens),
        "eos": EOS,
        "vocab_size": VOCAB_SIZE,
    }
    with open(OUT / "expected.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(expected, f)
        f.write("\n")
    print(f"tokenizers {tokenizers.__version__}: {len(records)} docs, {len(tokens):,} tokens, "
          f"token_sum {expected['token_sum']:,}")


if __name__ == "__main__":
    main()
