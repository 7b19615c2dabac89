#!/usr/bin/env python3
"""Independent reader for llm.c token shards (.bin), used to check fixtures by hand.

  .venv/bin/python scripts/read_llmc_shard.py FILE [FILE...]

For each file prints magic, version, dtype, number of tokens, the first 10 tokens and the sum of
all tokens. Follows _peek_data_shard/_load_data_shard in karpathy/llm.c (train_gpt2.py for GPT-2,
train_llama3.py for LLaMA-3): a 256-int32 little-endian header; the magic picks the format and
must come with its version (20240520 -> version 1, uint16 tokens; 20240801 -> version 7, uint32
tokens); header[2] is the token count, and the file must be exactly 1024 + count * itemsize bytes.
Exits 1 if any file breaks a rule. Standard library + numpy only; not needed by the Rust tests.
"""
import os
import sys

import numpy as np

HEADER_BYTES = 256 * 4
FORMATS = {  # magic -> (version, token dtype)
    20240520: (1, np.dtype("<u2")),  # GPT-2
    20240801: (7, np.dtype("<u4")),  # LLaMA-3
}


class ShardError(Exception):
    pass


def read_shard(path):
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ShardError(f"file is {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
        magic, version, ntok = (int(x) for x in header[:3])
        if magic not in FORMATS:
            raise ShardError(f"bad magic {magic} (want one of {sorted(FORMATS)})")
        want_version, dtype = FORMATS[magic]
        if version != want_version:
            raise ShardError(f"magic {magic} needs version {want_version}, got {version}")
        if ntok < 0:
            raise ShardError(f"negative token count {ntok}")
        want_size = HEADER_BYTES + ntok * dtype.itemsize
        if size != want_size:
            raise ShardError(f"file is {size} bytes, header says {ntok} tokens -> {want_size} bytes")
        tokens = np.frombuffer(f.read(), dtype=dtype)
    if len(tokens) != ntok:  # llm.c's own check; unreachable after the size check
        raise ShardError(f"read {len(tokens)} tokens, header says {ntok}")
    return magic, version, dtype, tokens


def main(paths):
    if not paths:
        print("usage: read_llmc_shard.py FILE [FILE...]", file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        try:
            magic, version, dtype, tokens = read_shard(path)
        except (OSError, ShardError) as e:
            print(f"{path}: ERROR: {e}", file=sys.stderr)
            failed = True
            continue
        print(f"{path}: magic={magic} version={version} dtype={dtype.name} num_tokens={len(tokens)} "
              f"first10={tokens[:10].tolist()} sum={int(tokens.sum(dtype=np.int64))}")
        if len(tokens) == 0:
            print(f"{path}: note: llm.c's C DataLoader asserts ntok > 0 and would reject this shard")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
