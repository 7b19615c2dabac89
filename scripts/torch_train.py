#!/usr/bin/env python3
"""PyTorch reference for wick's `train --task pretrain` (used by scripts/bench_train.sh).

Trains a Hugging Face LlamaForCausalLM from scratch on a wick shard directory, the way nanoGPT
does on CPU, and measures either its speed or the model it ends with:

    .venv/bin/python scripts/torch_train.py --data SHARDS --config scripts/presets/nano.json \\
        --batch-size 12 --seq-len 64 --mode speed                  # one JSON line: ms/step, GFLOP/s
    .venv/bin/python scripts/torch_train.py --data SHARDS --config scripts/presets/nano.json \\
        --mode train --steps 2000 --eval-interval 500 --eval-batches 20 -o OUT
                                                 # JSONL metrics, then OUT/ = HF model + tokenizer
    .venv/bin/python scripts/torch_train.py --data SHARDS --config CONFIG --mode flops
                                                 # the FLOP count below, without running anything
    .venv/bin/python scripts/torch_train.py ... --precision bf16 --grad-checkpoint
                                                 # mixed precision, recomputed decoder layers
                                                 # (scripts/bench_precision.sh)

What it does (every choice is meant to be the plain, well-known one, so it is a fair peer):
  model      transformers' LlamaForCausalLM(LlamaConfig(**config)), float32, transformers' own init,
             torch.manual_seed(--seed) first; --attn picks sdpa or eager attention. vocab_size is
             replaced by the manifest's when they differ (note on stderr).
  data       the shard directory's manifest.json (or, without one, llm.c *.bin files; a name with
             "val" is validation), memory-mapped with numpy. Training batches: B windows of T+1
             tokens, each start uniform over every window position of the train split (a window
             never crosses a shard boundary), as wick-shard's Sampler does (numpy's RNG, not
             wick's SplitMix64, so the windows themselves differ). inputs = w[:-1], targets = w[1:].
             Loss masks (.mask files) are ignored: pretraining counts every token.
  loss       F.cross_entropy(logits, targets), mean over the B*T targets (the model's own
             labels= path is not used, so there is no hidden shift).
  precision  --precision f32 (default): everything float32. bf16 / fp16: PyTorch's automatic mixed
             precision on the CPU, the standard recipe: the weights, gradients and AdamW state stay
             float32; the forward pass runs under torch.autocast("cpu", dtype=bfloat16 / float16),
             which casts the inputs of matmuls (linear layers, attention's products) to the low
             precision and keeps the ops on its float32 list (softmax, norms' reductions, ...) in
             float32; the logits come out in the low precision and are widened (logits.float())
             before the float32 cross-entropy, as transformers' own loss does; backward follows
             the same casts. fp16 adds torch.amp.GradScaler("cpu") (dynamic loss scaling; the
             gradients are unscaled before clipping, a step with inf/NaN gradients is skipped).
             Evaluation (train mode) runs under the same autocast.
  checkpoint --grad-checkpoint: transformers' activation_checkpointing_enable (formerly
             gradient_checkpointing_enable) with use_reentrant=False, i.e.
             torch.utils.checkpoint around each decoder layer: only each layer's input is kept
             in the forward pass, and the layer is run again (under the same autocast) in the
             backward pass.
  optimizer  torch.optim.AdamW(betas, weight_decay) with nanoGPT's groups: decay on every
             parameter with dim >= 2 (matrices and embeddings), none on norm weights / biases;
             fused / foreach left at torch's defaults. Gradients clipped to --grad-clip global norm
             (0 = off). zero_grad(set_to_none=True).
  schedule   nanoGPT's get_lr(it), it = 0 .. steps-1: it < warmup: lr*(it+1)/(warmup+1); else
             cosine from lr to min_lr over [warmup, steps]: ratio = (it-warmup)/(steps-warmup),
             min_lr + 0.5*(1+cos(pi*ratio))*(lr-min_lr).
  eval       (train mode) before training (when eval_interval > 0), after step s when
             s % eval_interval == 0, and after the last step: mean CE per target token over the
             first --eval-batches batches of the val split read in order as wick-shard's
             Sequential does: each val shard in turn, windows of T+1 tokens starting every T
             tokens (a shard's final partial window left out), B windows per batch (the last batch
             may be short; fewer windows than asked for just means fewer batches).

FLOPs (speed and flops modes), the PaLM / nanoGPT estimate:
    flops_per_step = 6 * N * tokens + 12 * n_layer * n_head * head_dim * seq_len * tokens
    tokens = batch_size * seq_len;  N = the parameters that take part in matmuls = the weights (and
    biases) of every nn.Linear: q/k/v/o, gate/up/down and lm_head. The embedding lookup and the
    RMSNorm weights are not in N; with tied embeddings the shared matrix counts once (as lm_head).
The attention term counts the full T x T score and value matmuls (causality not discounted).

Output (stdout, one JSON object per line; notes go to stderr):
  speed  runs --steps steps (default 30), discards the first 5 and prints
         {"tool":"torch","ms_per_step_median","ms_per_step_p10","ms_per_step_p90","params",
          "params_matmul","tokens_per_step","flops_per_step","gflops_per_s",...}; a step is the
         whole iteration: batch, forward, loss, backward, clip, AdamW step, zero_grad, loss.item().
         --profile-mm then runs 5 more steps under torch.profiler and adds "mm_seconds" (self
         time of aten::mm, addmm and bmm), "profiled_seconds" and "mm_share". Also
         "precision", "grad_checkpoint" and "peak_rss_mib" (the process's ru_maxrss: Python and
         the torch libraries included).
  train  one line per step, named as in wick's metrics.jsonl: {"step","loss","lr","grad_norm",
         "tokens","step_ms","elapsed_s"} (+ "val_loss" on eval steps; step counts completed
         optimizer steps from 1, lr is the one that step used, grad_norm the global norm before
         clipping, tokens the total trained on so far, step_ms the step's wall time, elapsed_s
         since training began). With --eval-interval > 0 a first line {"step":0,"val_loss"}
         scores the untrained model, as nanoGPT and wick do. Then it
         saves the model with save_pretrained(OUT) (config.json, generation_config.json,
         model.safetensors) plus the shard directory's tokenizer.json / tokenizer_config.json
         (OUT is written under a temporary name and renamed when complete), and prints
         {"tool":"torch","final_val_loss","train_seconds",...}. train_seconds is the wall time of
         the step loop including its evaluations (not imports, model build or saving).
  flops  {"params","params_matmul","tokens_per_step","flops_per_step"} from a model built on the
         meta device (no memory, no data read; --data only supplies the vocab size).
"""

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

HEADER_INTS = 256
MAGIC = {20240520: (1, np.uint16), 20240801: (7, np.uint32)}  # magic -> (version, token dtype)
SPEED_WARMUP = 5  # speed mode: steps left out of the statistics
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def note(msg):
    print(f"torch_train: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    print(f"torch_train: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def emit(obj):
    print(json.dumps(obj), flush=True)


# --- data ------------------------------------------------------------------------------------


def open_shard(path):
    """Memory-map one llm.c-format token shard; checks its header and size."""
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if len(header) != HEADER_INTS or int(header[0]) not in MAGIC:
        die(f"{path}: not an llm.c token shard (bad header)")
    version, dtype = MAGIC[int(header[0])]
    if int(header[1]) != version:
        die(f"{path}: magic {header[0]} with version {header[1]} (expected {version})")
    n = int(header[2])
    want = HEADER_INTS * 4 + n * np.dtype(dtype).itemsize
    if os.path.getsize(path) != want:
        die(f"{path}: {os.path.getsize(path)} bytes, header says {n} tokens ({want} bytes)")
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r",
                     offset=HEADER_INTS * 4, shape=(n,))


def open_shards(data):
    """Returns ({"train": [arrays], "val": [arrays]}, the manifest (a dict) or None)."""
    manifest_path = os.path.join(data, "manifest.json")
    splits = {"train": [], "val": []}
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            m = json.load(f)
        if m.get("format") != "wick-shards":
            die(f"{manifest_path}: not a wick shard manifest")
        for entry in m["shards"]:
            if entry["split"] not in splits:
                die(f"{manifest_path}: unknown split {entry['split']!r}")
            arr = open_shard(os.path.join(data, entry["file"]))
            if len(arr) != entry["tokens"]:
                die(f"{entry['file']}: {len(arr)} tokens, the manifest says {entry['tokens']}")
            splits[entry["split"]].append(arr)
        return splits, m
    if os.path.isfile(data) and data.endswith(".bin"):
        files = [data]
    elif os.path.isdir(data):
        files = sorted(os.path.join(data, n) for n in os.listdir(data) if n.endswith(".bin"))
    else:
        die(f"{data}: no manifest.json and no llm.c .bin shards")
    if not files:
        die(f"{data}: no manifest.json and no .bin shards")
    for path in files:
        splits["val" if "val" in os.path.basename(path) else "train"].append(open_shard(path))
    return splits, None


class Sampler:
    """B random windows of T+1 tokens, uniform over all window starts of the split's shards."""

    def __init__(self, shards, b, t, seed):
        self.shards = [s for s in shards if len(s) > t]
        if not self.shards:
            die(f"no train shard holds a window of {t + 1} tokens")
        self.cum = np.cumsum([len(s) - t for s in self.shards])
        self.rng = np.random.default_rng(seed)
        self.b, self.t = b, t

    def next_batch(self):
        r = self.rng.integers(0, self.cum[-1], size=self.b)
        idx = np.searchsorted(self.cum, r, side="right")
        rows = []
        for i, x in zip(idx, r):
            start = int(x - (self.cum[i - 1] if i > 0 else 0))
            rows.append(np.asarray(self.shards[i][start:start + self.t + 1], dtype=np.int64))
        return np.stack(rows)


def eval_batches(shards, b, t, max_batches):
    """The first max_batches batches of sequential windows (start every t, length t+1)."""
    rows = []
    for s in shards:
        for start in range(0, len(s) - t, t):
            rows.append(np.asarray(s[start:start + t + 1], dtype=np.int64))
            if len(rows) == b * max_batches:
                break
        if len(rows) == b * max_batches:
            break
    return [np.stack(rows[i:i + b]) for i in range(0, len(rows), b)]


# --- model, FLOPs, schedule --------------------------------------------------------------------


def load_config(path, manifest, attn):
    """LlamaConfig from the JSON file; vocab_size (and bos/eos ids the file leaves out, which
    LlamaConfig would default to 1 and 2) come from the shard manifest when there is one."""
    from transformers import LlamaConfig

    with open(path) as f:
        cfg = json.load(f)
    if not isinstance(cfg, dict):
        die(f"{path}: not a JSON object")
    for drop in ("architectures", "model_type", "transformers_version", "attn_implementation",
                 "_attn_implementation"):
        cfg.pop(drop, None)
    if manifest is not None:
        vocab = int(manifest["vocab_size"])
        if cfg.get("vocab_size") != vocab:
            note(f"vocab_size {cfg.get('vocab_size')} in {path} differs from the shards' {vocab}; "
                 f"using {vocab}")
            cfg["vocab_size"] = vocab
        for key in ("bos_token_id", "eos_token_id"):
            cfg.setdefault(key, int(manifest["eos_id"]))
    return LlamaConfig(**cfg, attn_implementation=attn)


def matmul_params(model):
    """N of the FLOP formula: weights and biases of every nn.Linear (each tensor counted once)."""
    import torch

    seen, n = set(), 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            for p in mod.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
    return n


def flops_per_step(config, n_matmul, batch_size, seq_len):
    """6*N*tokens + 12*n_layer*n_head*head_dim*seq_len*tokens (PaLM appendix B / nanoGPT)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    tokens = batch_size * seq_len
    return (6 * n_matmul * tokens
            + 12 * config.num_hidden_layers * config.num_attention_heads * head_dim * seq_len
            * tokens)


def enable_checkpointing(model):
    """torch.utils.checkpoint (non-reentrant) around every decoder layer, through transformers'
    own switch: activation_checkpointing_enable (transformers >= 5.2x; gradient_checkpointing_enable,
    its older name, is deprecated there)."""
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)


def get_lr(it, lr, min_lr, warmup, steps):
    """nanoGPT's schedule (lr_decay_iters = steps)."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it >= steps or steps <= warmup:
        return min_lr
    ratio = (it - warmup) / (steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def make_optimizer(model, args):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2))


# --- the modes ---------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="wick shard directory (manifest.json)")
    p.add_argument("--config", required=True, help="Hugging Face LlamaConfig JSON")
    p.add_argument("--mode", choices=("speed", "train", "flops"), default="speed")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--steps", type=int, help="optimizer steps (default: 30 speed, 2000 train)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--grad-clip", type=float, default=1.0, help="global-norm clip, 0 = off")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    p.add_argument("--eval-interval", type=int, default=500, help="0 = only after the last step")
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("-o", "--output", help="model folder to write (train mode)")
    p.add_argument("--profile-mm", action="store_true",
                   help="speed mode: 5 more steps under torch.profiler; adds mm_share")
    p.add_argument("--precision", choices=("f32", "bf16", "fp16"), default="f32",
                   help="f32, or autocast mixed precision with float32 weights (default f32)")
    p.add_argument("--grad-checkpoint", action="store_true",
                   help="recompute each decoder layer in the backward pass")
    args = p.parse_args()

    if args.steps is None:
        args.steps = 30 if args.mode == "speed" else 2000
    for name in ("batch_size", "seq_len", "steps", "threads"):
        if getattr(args, name) < 1:
            die(f"--{name.replace('_', '-')} must be at least 1", 2)
    if args.warmup < 0 or args.eval_interval < 0 or args.eval_batches < 1:
        die("--warmup and --eval-interval must be >= 0, --eval-batches >= 1", 2)
    if args.mode == "speed" and args.steps <= SPEED_WARMUP:
        die(f"speed mode needs --steps > {SPEED_WARMUP} (the first {SPEED_WARMUP} are discarded)", 2)
    if args.mode == "train" and not args.output:
        die("--mode train needs -o OUT_DIR", 2)

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import LlamaForCausalLM

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    if args.mode == "flops":
        manifest = None
        if os.path.isfile(os.path.join(args.data, "manifest.json")):
            with open(os.path.join(args.data, "manifest.json")) as f:
                manifest = json.load(f)
        config = load_config(args.config, manifest, args.attn)
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        n_mm = matmul_params(model)
        emit({"params": sum(p.numel() for p in model.parameters()), "params_matmul": n_mm,
              "tokens_per_step": args.batch_size * args.seq_len,
              "flops_per_step": flops_per_step(config, n_mm, args.batch_size, args.seq_len)})
        return

    splits, manifest = open_shards(args.data)
    config = load_config(args.config, manifest, args.attn)
    if args.seq_len > config.max_position_embeddings:
        die(f"--seq-len {args.seq_len} exceeds max_position_embeddings "
            f"{config.max_position_embeddings} of {args.config}", 2)
    for split in ("train", "val"):
        for s in splits[split]:
            if len(s) and int(s.max()) >= config.vocab_size:
                die(f"a {split} shard holds id {int(s.max())} >= vocab_size {config.vocab_size}")

    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    if args.grad_checkpoint:
        enable_checkpointing(model)
    model.train()
    amp_dtype = {"f32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=amp_dtype)

    scaler = torch.amp.GradScaler("cpu") if args.precision == "fp16" else None
    n_params = sum(p.numel() for p in model.parameters())
    n_mm = matmul_params(model)
    tokens = args.batch_size * args.seq_len
    flops = flops_per_step(config, n_mm, args.batch_size, args.seq_len)
    optimizer = make_optimizer(model, args)
    sampler = Sampler(splits["train"], args.batch_size, args.seq_len, args.seed)
    note(f"{args.mode}: {n_params:,} parameters ({n_mm:,} in matmuls), "
         f"{config.num_hidden_layers} layers x {config.num_attention_heads} heads x "
         f"{config.hidden_size}, vocab {config.vocab_size}; B={args.batch_size} T={args.seq_len} "
         f"steps={args.steps} threads={torch.get_num_threads()} attn={args.attn} "
         f"precision={args.precision} grad_checkpoint={args.grad_checkpoint} "
         f"torch {torch.__version__} transformers {transformers.__version__}")

    def train_step(it):
        lr = get_lr(it, args.lr, args.min_lr, args.warmup, args.steps)
        for g in optimizer.param_groups:
            g["lr"] = lr
        w = torch.from_numpy(sampler.next_batch())
        x, y = w[:, :-1], w[:, 1:]
        with autocast():
            logits = model(input_ids=x, use_cache=False).logits
        logits = logits.float()  # a no-op in f32
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        norm = None
        if args.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item(), lr, norm

    if args.mode == "speed":
        times = []
        for it in range(args.steps):
            t0 = time.perf_counter()
            loss, _, _ = train_step(it)
            times.append((time.perf_counter() - t0) * 1000.0)
            if not math.isfinite(loss):
                die(f"loss is {loss} at step {it + 1}")
        kept = np.array(times[SPEED_WARMUP:])
        median = float(np.median(kept))
        profiled = {}
        if args.profile_mm:
            # The matrix products' self time (each runs on the intra-op threads inside the
            # call, so this is wall time) over 5 more steps, against those steps' wall time.
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                t0 = time.perf_counter()
                for it in range(args.steps, args.steps + 5):
                    train_step(it)
                wall = time.perf_counter() - t0
            mm_us = sum(e.self_cpu_time_total for e in prof.key_averages()
                        if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
            profiled = {"mm_seconds": round(mm_us / 1e6, 4), "profiled_seconds": round(wall, 4),
                        "mm_share": round(mm_us / 1e6 / wall, 4)}
        emit(profiled | {"tool": "torch", "ms_per_step_median": round(median, 3),
              "ms_per_step_p10": round(float(np.percentile(kept, 10)), 3),
              "ms_per_step_p90": round(float(np.percentile(kept, 90)), 3),
              "params": n_params, "params_matmul": n_mm, "tokens_per_step": tokens,
              "flops_per_step": flops, "gflops_per_s": round(flops / (median / 1000.0) / 1e9, 3),
              "steps_timed": len(kept), "last_loss": round(loss, 4), "threads": args.threads,
              "attn": args.attn, "batch_size": args.batch_size, "seq_len": args.seq_len,
              "precision": args.precision, "grad_checkpoint": args.grad_checkpoint,
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
        return

    # --- train mode ---
    val = eval_batches(splits["val"], args.batch_size, args.seq_len, args.eval_batches)
    if not val:
        die(f"the val split holds no window of {args.seq_len + 1} tokens")
    n_windows = sum(len(b) for b in val)
    if n_windows < args.batch_size * args.eval_batches:
        note(f"val split has {n_windows} windows of {args.seq_len + 1} tokens, fewer than "
             f"--eval-batches {args.eval_batches} x --batch-size {args.batch_size}; using them all")
    val = [torch.from_numpy(b) for b in val]

    @torch.no_grad()
    def evaluate():
        model.eval()
        total, count = 0.0, 0
        for w in val:
            with autocast():
                logits = model(input_ids=w[:, :-1], use_cache=False).logits.float()
            y = w[:, 1:]
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
        model.train()
        return total / count

    start = time.perf_counter()
    if args.eval_interval:  # nanoGPT (and wick) also evaluate the untrained model
        emit({"step": 0, "val_loss": round(evaluate(), 6), "elapsed_s": 0.0})
    val_loss = None
    for it in range(args.steps):
        t0 = time.perf_counter()
        loss, lr, norm = train_step(it)
        ms = (time.perf_counter() - t0) * 1000.0
        if not math.isfinite(loss):
            die(f"loss is {loss} at step {it + 1}")
        step = it + 1
        line = {"step": step, "loss": round(loss, 6), "lr": lr}
        if norm is not None:
            line["grad_norm"] = round(norm.item(), 6)
        line.update({"tokens": step * tokens, "step_ms": round(ms, 3),
                     "elapsed_s": round(time.perf_counter() - start, 3)})
        if (args.eval_interval and step % args.eval_interval == 0) or step == args.steps:
            val_loss = evaluate()
            line["val_loss"] = round(val_loss, 6)
        emit(line)
    train_seconds = time.perf_counter() - start

    out = os.path.abspath(args.output)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp", dir=parent)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in TOKENIZER_FILES:
            src = os.path.join(args.data, name)
            if os.path.isfile(src):
                shutil.copyfile(src, os.path.join(tmp, name))
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    emit({"tool": "torch", "final_val_loss": round(val_loss, 6),
          "train_seconds": round(train_seconds, 3), "steps": args.steps,
          "val_tokens": sum(b[:, 1:].numel() for b in val), "params": n_params,
          "output": args.output})


if __name__ == "__main__":
    main()
