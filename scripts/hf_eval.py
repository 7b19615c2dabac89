#!/usr/bin/env python3
"""Hugging Face transformers peer of wick's `ppl` and `generate`, for scripts/bench_eval.sh.

  .venv/bin/python scripts/hf_eval.py --model DIR --mode ppl --data SHARDS [--seq-len 256]
      [--batch-size 8] [--max-tokens N] [--split val] [--concat] [--drop-partial] [--threads 2]
  .venv/bin/python scripts/hf_eval.py --model DIR --mode generate --prompts PROMPTS.jsonl
      [--max-new-tokens 128] [--prefix none|bos] [--out IDS.jsonl] [--tokenizer DIR] [--threads 2]

Needs torch + transformers + safetensors (scripts/requirements-models.txt). The model is loaded
with AutoModelForCausalLM.from_pretrained(DIR) in float32 and run on the CPU under
torch.inference_mode(), with torch.set_num_threads(--threads) and one inter-op thread. Prints one
JSON line on stdout; notes go to stderr.

ppl mode
  Reads the --split (default val) token shards of SHARDS: a wick shard directory (the shards of
  that split in manifest.json order), a directory of llm.c .bin files (a name containing "val" is
  validation, sorted by name) or one .bin file (llm.c format: 256 int32 header, magic 20240520 /
  version 1 = uint16 tokens or 20240801 / version 7 = uint32, header[2] = token count). Each
  shard is one token stream (as wick ppl --data scores them; --concat joins the split's shards, in
  that order, into one stream instead; the same with a single val shard, the usual case). With
  --max-tokens N only the first N+1 tokens are kept (over the streams in order, skipping streams
  of fewer than 2 tokens, as wick ppl does), so at most N tokens are scored. Each stream is cut
  into windows of T+1 tokens starting at 0, T, 2T, ... (inputs w[:-1], targets w[1:]), so every
  token but a stream's first is a target exactly once; the last, shorter window is scored too when
  it has >= 2 tokens (--drop-partial leaves it out, as wick-shard's Sequential order does).
  Full windows go B at a time; each short window gets a forward pass of its own. One batch is run
  untimed as a warm-up, then every batch is timed (forward pass + log-softmax + gather only).
  Output: {"tool":"transformers","mode":"ppl","tokens":scored,"nll":mean nats/token,
           "ppl":exp(nll),"seconds":..,"tokens_per_s":..,"windows":..,"batches":..,
           "seq_len":T,"batch_size":B,"threads":..,"load_seconds":..}
  --profile-mm then runs every batch once more under torch.profiler and adds "mm_seconds" (self
  time of aten::mm, addmm and bmm), "profiled_seconds" (that pass's wall time) and "mm_share".
  The per-token log-probs are float32 (log_softmax of float32 logits); their sum is float64.

generate mode
  Each non-blank line of --prompts is {"prompt": "..."}; it is tokenized with the model folder's
  tokenizer (or --tokenizer) via AutoTokenizer, no special tokens added. --prefix bos puts one id
  before it as wick generate does by default: the config's bos_token_id, else the tokenizer's BOS,
  else its EOS, else the config's (first) eos_token_id (--prefix none, the default, puts none, as
  wick generate --no-prefix). Greedy decoding
  (do_sample=False) with the KV cache, batch 1, one prompt at a time. No EOS is defined during
  generation (generation_config.eos_token_id = None) and no logits processor runs, so every prompt
  gets exactly --max-new-tokens tokens (checked) and the choice at each step is the plain argmax:
  an EOS that happens to be the argmax is emitted and generation goes on. One warm-up generate
  (first prompt, 8 tokens) is untimed; each timed interval is one model.generate call.
  Output: {"tool":"transformers","mode":"generate","prompts":..,"new_tokens":total generated,
           "seconds":..,"tokens_per_s":..,"prompt_tokens":..,"threads":..,"load_seconds":..}
  --out FILE writes one line per prompt: {"prompt":..,"prompt_ids":[prefix + prompt ids],
  "ids":[generated ids]}.
"""

import argparse
import json
import math
import os
import sys
import time

HEADER_INTS = 256
FORMATS = {20240520: (1, "<u2"), 20240801: (7, "<u4")}  # magic -> (version, token dtype)


def die(msg):
    print(f"hf_eval: error: {msg}", file=sys.stderr)
    sys.exit(1)


def note(msg):
    print(f"hf_eval: {msg}", file=sys.stderr)


# --- shards ---------------------------------------------------------------------------------------

def read_shard(path):
    import numpy as np

    size = os.path.getsize(path)
    if size < HEADER_INTS * 4:
        die(f"{path}: {size} bytes, shorter than the 1024-byte llm.c header")
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_INTS * 4), dtype="<i4")
        magic, version, n = (int(x) for x in header[:3])
        if magic not in FORMATS:
            die(f"{path}: bad magic {magic} (want 20240520 or 20240801)")
        want_version, dtype = FORMATS[magic]
        if version != want_version:
            die(f"{path}: magic {magic} needs version {want_version}, got {version}")
        width = np.dtype(dtype).itemsize
        if size != HEADER_INTS * 4 + n * width:
            die(f"{path}: {size} bytes, but the header says {n} tokens of {width} bytes")
        tokens = np.frombuffer(f.read(), dtype=dtype)
    return tokens.astype(np.int64)


def split_shards(data, split):
    """The .bin files of `split` under `data`, in reading order."""
    if os.path.isfile(data):
        return [data]
    if not os.path.isdir(data):
        die(f"{data}: no such shard directory or file")
    manifest = os.path.join(data, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            m = json.load(f)
        if m.get("format") != "wick-shards":
            die(f"{manifest}: not a wick shard manifest")
        files = [os.path.join(data, e["file"]) for e in m["shards"] if e["split"] == split]
    else:
        bins = sorted(n for n in os.listdir(data) if n.endswith(".bin") and not n.startswith("."))
        want_val = split == "val"
        files = [os.path.join(data, n) for n in bins if ("val" in n) == want_val]
    if not files:
        die(f"{data}: no {split} shards")
    return files


def windows(streams, t, drop_partial):
    """(start, stop) slices of windows of t+1 tokens, stride t, over each stream."""
    out = []
    for k, s in enumerate(streams):
        n = len(s)
        pos = 0
        while pos + 1 < n:
            stop = min(pos + t + 1, n)
            if stop - pos < t + 1 and drop_partial:
                break
            out.append((k, pos, stop))
            pos += t
    return out


def run_ppl(args, torch, model):
    import numpy as np

    files = split_shards(args.data, args.split)
    shards = [read_shard(p) for p in files]
    streams = [np.concatenate(shards)] if args.concat and len(shards) > 1 else shards
    if args.max_tokens is not None:
        budget, kept = args.max_tokens + 1, []
        for s in streams:  # max_tokens + 1 tokens in all
            n = min(len(s), budget)
            if n < 2:
                continue
            kept.append(s[:n])
            budget -= n
        streams = kept
    vocab = model.config.vocab_size
    for p, s in zip(files, shards):
        if len(s) and int(s.max()) >= vocab:
            die(f"{p}: token id {int(s.max())} is outside the model's vocabulary ({vocab})")

    t, b = args.seq_len, args.batch_size
    wins = windows(streams, t, args.drop_partial) if streams else []
    if not wins:
        die(f"{args.data}: the {args.split} split has too few tokens for one window")
    full = [w for w in wins if w[2] - w[1] == t + 1]
    short = [w for w in wins if w[2] - w[1] != t + 1]
    batches = [full[i:i + b] for i in range(0, len(full), b)] + [[w] for w in short]
    tensors = [
        torch.from_numpy(np.stack([streams[k][lo:hi] for k, lo, hi in batch]))
        for batch in batches
    ]

    def score(x):
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -logp.gather(-1, x[:, 1:, None]).sum(dtype=torch.float64).item()

    with torch.inference_mode():
        score(tensors[0])  # warm-up
        total = 0.0
        seconds = 0.0
        for x in tensors:
            t0 = time.perf_counter()
            total += score(x)
            seconds += time.perf_counter() - t0
        mm = profile_mm(torch, score, tensors) if args.profile_mm else None
    tokens = sum(hi - lo - 1 for _, lo, hi in wins)
    nll = total / tokens
    out = {} if mm is None else {"mm_seconds": mm[0], "profiled_seconds": mm[1], "mm_share": mm[0] / mm[1]}
    return out | {
        "tool": "transformers",
        "mode": "ppl",
        "tokens": tokens,
        "nll": nll,
        "ppl": math.exp(nll),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "windows": len(wins),
        "batches": len(batches),
        "seq_len": t,
        "batch_size": b,
    }


def profile_mm(torch, score, tensors):
    """One more pass over every batch under torch.profiler: (seconds in the matrix-product ops,
    seconds of the pass). aten::mm/addmm/bmm's self CPU time is the wall time of the call (the
    op runs on the intra-op threads inside it)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for x in tensors:
            score(x)
        seconds = time.perf_counter() - t0
    mm_us = sum(e.self_cpu_time_total for e in prof.key_averages()
                if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    return mm_us / 1e6, seconds


# --- generate -------------------------------------------------------------------------------------

def run_generate(args, torch, model):
    from transformers import AutoTokenizer, GenerationConfig

    tok_path = args.tokenizer or args.model
    if os.path.isfile(tok_path):  # a tokenizer.json
        tok_path = os.path.dirname(os.path.abspath(tok_path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_path)
    except Exception as e:  # noqa: BLE001 - report any failure the same way
        die(f"{tok_path}: cannot load a tokenizer ({type(e).__name__}: {e}); use --tokenizer")

    prompts = []
    with open(args.prompts, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                prompts.append(rec["prompt"])
            except (ValueError, KeyError, TypeError):
                die(f"{args.prompts}:{i}: want a JSON object with a \"prompt\" string")
    if not prompts:
        die(f"{args.prompts}: no prompts")
    prefix = []
    if args.prefix == "bos":
        cfg_eos = model.config.eos_token_id
        cfg_eos = cfg_eos[0] if isinstance(cfg_eos, (list, tuple)) and cfg_eos else cfg_eos
        for cand in (model.config.bos_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, cfg_eos):
            if isinstance(cand, int):
                prefix = [cand]
                break
        else:
            die("--prefix bos: the model and tokenizer define neither a BOS nor an EOS token")
    ids = [prefix + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    for i, p in enumerate(ids):
        if not p:
            die(f"{args.prompts}: prompt {i + 1} encodes to no tokens")

    n = args.max_new_tokens
    # No EOS anywhere: generate() fills unset (None) fields from model.generation_config.
    model.generation_config.eos_token_id = None
    model.generation_config.forced_eos_token_id = None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    gc = GenerationConfig(
        do_sample=False, num_beams=1, use_cache=True, max_new_tokens=n, min_new_tokens=None,
        eos_token_id=None, pad_token_id=pad, temperature=None, top_p=None, top_k=None,
    )

    def gen(p, new):
        x = torch.tensor([p], dtype=torch.long)
        cfg = gc if new == n else GenerationConfig(**{**gc.to_dict(), "max_new_tokens": new})
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=cfg)
        return out[0, len(p):].tolist()

    results = []
    with torch.inference_mode():
        gen(ids[0], min(8, n))  # warm-up
        seconds = 0.0
        for p in ids:
            t0 = time.perf_counter()
            new = gen(p, n)
            seconds += time.perf_counter() - t0
            if len(new) != n:
                die(f"generated {len(new)} tokens, want {n} (did generation stop at an EOS?)")
            results.append(new)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for prompt, p, new in zip(prompts, ids, results):
                f.write(json.dumps({"prompt": prompt, "prompt_ids": p, "ids": new}) + "\n")
        os.replace(tmp, args.out)
    total = n * len(prompts)
    return {
        "tool": "transformers",
        "mode": "generate",
        "prompts": len(prompts),
        "new_tokens": total,
        "seconds": seconds,
        "tokens_per_s": total / seconds,
        "prompt_tokens": sum(len(p) for p in ids),
    }


def main():
    head, _, rest = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=head, epilog=rest,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--mode", required=True, choices=["ppl", "generate"])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    g = ap.add_argument_group("ppl")
    g.add_argument("--data", help="wick shard directory, llm.c .bin directory or one .bin file")
    g.add_argument("--split", default="val", choices=["val", "train"])
    g.add_argument("--seq-len", type=int, default=256)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--max-tokens", type=int, help="score at most N tokens (the first N+1 of the split)")
    g.add_argument("--drop-partial", action="store_true", help="leave out the last, shorter window")
    g.add_argument("--profile-mm", action="store_true",
                   help="after the timed pass, one more under torch.profiler: mm_seconds, mm_share")
    g.add_argument("--concat", action="store_true",
                   help="join the split's shards into one stream (default: windows restart in every shard)")
    g = ap.add_argument_group("generate")
    g.add_argument("--prompts", help='JSONL file, one {"prompt": "..."} per line')
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--tokenizer", help="tokenizer folder or tokenizer.json (default: --model)")
    g.add_argument("--prefix", default="none", choices=["none", "bos"],
                   help="put the BOS (else EOS) id before each prompt, as wick generate does (default: none)")
    g.add_argument("--out", help="write {prompt, prompt_ids, ids} per prompt to this JSONL file")
    args = ap.parse_args()

    if args.threads < 1:
        die("--threads must be >= 1")
    if args.mode == "ppl":
        if not args.data:
            die("--mode ppl needs --data")
        if args.seq_len < 1 or args.batch_size < 1:
            die("--seq-len and --batch-size must be >= 1")
        if args.max_tokens is not None and args.max_tokens < 1:
            die("--max-tokens must be >= 1")
    else:
        if not args.prompts:
            die("--mode generate needs --prompts")
        if args.max_new_tokens < 1:
            die("--max-new-tokens must be >= 1")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        die(f"{args.model}: not a model folder (no config.json)")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    transformers.utils.logging.disable_progress_bar()

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    load_seconds = time.perf_counter() - t0

    res = run_ppl(args, torch, model) if args.mode == "ppl" else run_generate(args, torch, model)
    res["threads"] = args.threads
    res["load_seconds"] = load_seconds
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
