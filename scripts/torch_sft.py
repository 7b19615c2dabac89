#!/usr/bin/env python3
"""PyTorch + PEFT reference for wick's `train --task sft` (used by scripts/bench_sft.sh).

Supervised fine-tuning of a Hugging Face LlamaForCausalLM on a wick SFT shard directory (records
tokenized with loss masks, then packed by `pack`), with a LoRA adapter (PEFT) or every weight:

    .venv/bin/python scripts/torch_sft.py --mode init --data SHARDS \\
        --config scripts/presets/nano.json --seq-len 64 -o BASE      # a random-init base model
    .venv/bin/python scripts/torch_sft.py --mode check --init BASE --data SHARDS
                                  # packed logits == per-example logits? (one JSON line, rc 1 if not)
    .venv/bin/python scripts/torch_sft.py --mode speed --init BASE --data SHARDS \\
        --method lora --batch-size 12 --seq-len 64 --steps 30 --threads 2   # one JSON line: ms/step

What it does (the same work as wick's `train --task sft`):
  model      LlamaForCausalLM.from_pretrained(--init, dtype=float32), --attn sdpa or eager.
             --method lora: peft.get_peft_model(model, LoraConfig(r, lora_alpha, lora_dropout=0,
             target_modules=--lora-targets, bias="none", task_type="CAUSAL_LM")): only the LoRA A/B
             matrices train (PEFT's init: A Kaiming-uniform, B zero). --method full: every weight.
  examples   the documents of the train split: each shard's .docs sidecar gives the document
             starts, the .mask sidecar the loss mask (1 = token counts as a target; all 1s when
             the shards carry no masks). Memory-mapped with numpy.
  packing    every epoch the examples are shuffled (numpy's default_rng(--seed), one permutation
             per epoch) and packed next-fit into rows of T+1 tokens: an example goes into the
             current row when it fits, else the row is closed and a new one begins; an example
             longer than T+1 is truncated to T+1; a row's unused tail is padding (EOS id, mask 0).
             Batches are B consecutive rows; a batch may span two epochs.
  inputs     input_ids = row[:-1]; position_ids restart at 0 for each example (and for the
             padding); attention is block-diagonal causal: a token sees the earlier tokens of its
             own example only. --packing position_ids (default) gives only the restarting
             position_ids with no attention_mask: transformers 5's create_causal_mask detects the
             packed format (masking_utils.find_packed_sequence_indices: a position step other than
             +1 starts a new sequence) and builds the block-diagonal causal mask, for sdpa and eager
             alike. --packing mask4d passes the mask itself, [B,1,T,T] (bool for sdpa, additive
             float 0/-inf-ish for eager), which transformers uses as it is. --mode check verifies
             both against running each example alone.
  loss       target i = row[i+1] counts when its mask is 1 and it belongs to the same example as
             input i (so an example's EOS never predicts the next example's first token);
             labels = -100 elsewhere; F.cross_entropy(logits, labels, ignore_index=-100), the mean
             over the counted targets (the model's own labels= path is not used).
  optimizer  torch.optim.AdamW(lr, betas (0.9, 0.95)) over the trainable parameters only:
             weight decay --weight-decay (0.1) on parameters with dim >= 2 (every LoRA matrix; for
             full: matrices and embeddings), none on norm weights. Constant lr (a schedule costs
             nothing measurable). Gradients clipped to --grad-clip global norm (0 = off) over the
             trainable parameters; zero_grad(set_to_none=True).

Output (stdout, one JSON object; notes go to stderr):
  init   writes OUT/ (config.json, generation_config.json, model.safetensors via save_pretrained,
         plus the shard directory's tokenizer.json / tokenizer_config.json): LlamaConfig from
         --config with vocab_size and bos/eos ids from the shard manifest and
         max_position_embeddings at least --seq-len, transformers' init after
         torch.manual_seed(--seed). Prints {"tool":"torch","output",...}.
  check  on --check-rows packed rows of the first epoch (those holding several examples first),
         model in eval mode: the logits of every real input position of each packed row against the logits
         of its example run alone (batch 1, positions 0.., no mask), for each packing approach
         and attention implementation, plus plain causal attention over the packed row with
         positions 0..T-1 as a control that must fail; and the packed loss against the loss
         computed from the separate runs. {"ok", "results": [{"packing","attn","max_abs_diff",
         "ok"}], "loss_packed", "loss_separate", ...}; ok needs max_abs_diff <= --check-tol for
         the --packing / --attn the speed mode would use. Exit status 1 when not ok.
  speed  runs --steps steps (default 30), discards the first 5 and prints {"tool":"torch",
         "method","ms_per_step_median","ms_per_step_p10","ms_per_step_p90","steps_timed",
         "last_loss","params","trainable_params","train_state_mib","peak_rss_mib",...}. A step is
         the whole iteration: the batch (packing a new epoch when one runs out, numpy -> torch),
         forward, loss, backward, clip, AdamW step, zero_grad, loss.item().
         train_state_mib = bytes of parameters + gradients + optimizer state after the last step;
         peak_rss_mib = the process's ru_maxrss (Python + torch included).
"""

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import HEADER_INTS, TOKENIZER_FILES, load_config, open_shard  # noqa: E402

SPEED_WARMUP = 5  # speed mode: steps left out of the statistics
DOCS_MAGIC, MASK_MAGIC = 20241129, 20241130


def note(msg):
    print(f"torch_sft: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    print(f"torch_sft: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def emit(obj):
    print(json.dumps(obj), flush=True)


# --- data ------------------------------------------------------------------------------------


def open_sidecar(path, magic, dtype, count_name):
    """Memory-map a .docs (uint64 offsets) or .mask (uint8) sidecar; returns (array, header N)."""
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if len(header) != HEADER_INTS or int(header[0]) != magic or int(header[1]) != 1:
        die(f"{path}: bad header (want magic {magic}, version 1)")
    n = int(header[2])
    want = HEADER_INTS * 4 + n * np.dtype(dtype).itemsize
    if os.path.getsize(path) != want:
        die(f"{path}: {os.path.getsize(path)} bytes, header says {n} {count_name} ({want} bytes)")
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r",
                     offset=HEADER_INTS * 4, shape=(n,))


class Examples:
    """The documents of one split: tokens and loss masks, addressed by (shard, start, length)."""

    def __init__(self, data, split="train"):
        manifest_path = os.path.join(data, "manifest.json")
        if not os.path.isfile(manifest_path):
            die(f"{data}: no manifest.json (SFT needs a wick shard directory with .docs sidecars)")
        with open(manifest_path) as f:
            self.manifest = m = json.load(f)
        if m.get("format") != "wick-shards":
            die(f"{manifest_path}: not a wick shard manifest")
        if not m.get("has_mask"):
            note(f"{data} carries no loss masks: every token is a target")
        self.tokens, self.masks = [], []
        shard_idx, starts, lengths = [], [], []
        for entry in m["shards"]:
            if entry["split"] != split:
                continue
            tok = open_shard(os.path.join(data, entry["file"]))
            n = len(tok)
            if n != entry["tokens"]:
                die(f"{entry['file']}: {n} tokens, the manifest says {entry['tokens']}")
            if not entry.get("docs_file"):
                die(f"{entry['file']}: no .docs sidecar in the manifest")
            docs = open_sidecar(os.path.join(data, entry["docs_file"]), DOCS_MAGIC, np.uint64,
                                "documents")
            docs = np.asarray(docs, dtype=np.int64)
            if len(docs) != entry["documents"] or (len(docs) and docs[0] != 0) \
                    or np.any(np.diff(docs) <= 0) or (len(docs) and docs[-1] >= n):
                die(f"{entry['docs_file']}: document starts do not fit {entry['file']}")
            if entry.get("mask_file"):
                mask = open_sidecar(os.path.join(data, entry["mask_file"]), MASK_MAGIC, np.uint8,
                                    "tokens")
                if len(mask) != n:
                    die(f"{entry['mask_file']}: {len(mask)} entries for {n} tokens")
            else:
                mask = np.ones(n, dtype=np.uint8)
            i = len(self.tokens)
            self.tokens.append(tok)
            self.masks.append(mask)
            shard_idx.append(np.full(len(docs), i, dtype=np.int64))
            starts.append(docs)
            lengths.append(np.diff(np.append(docs, n)))
        if not self.tokens or not sum(len(s) for s in starts):
            die(f"{data}: the {split} split holds no documents")
        self.shard = np.concatenate(shard_idx)
        self.start = np.concatenate(starts)
        self.length = np.concatenate(lengths)

    def __len__(self):
        return len(self.start)

    def get(self, i, limit):
        s, a = self.shard[i], self.start[i]
        b = a + min(int(self.length[i]), limit)
        return self.tokens[s][a:b], self.masks[s][a:b]


class Packer:
    """Rows of T+1 tokens: each epoch a fresh shuffle of the examples, packed next-fit."""

    def __init__(self, examples, b, t, seed, pad_id):
        self.ex, self.b, self.c, self.pad = examples, b, t + 1, pad_id
        self.rng = np.random.default_rng(seed)
        self.rows, self.next, self.epoch = [], 0, 0

    def _pack_epoch(self):
        order = self.rng.permutation(len(self.ex))
        lens = np.minimum(self.ex.length[order], self.c).tolist()
        rows, cur, used = [], [], 0
        for i, n in zip(order.tolist(), lens):
            if used + n > self.c:
                rows.append(cur)
                cur, used = [], 0
            cur.append(i)
            used += n
        if cur:
            rows.append(cur)
        self.rows, self.next = rows, 0
        self.epoch += 1

    def next_rows(self, n):
        out = []
        while len(out) < n:
            if self.next >= len(self.rows):
                self._pack_epoch()
            take = min(n - len(out), len(self.rows) - self.next)
            out.extend(self.rows[self.next:self.next + take])
            self.next += take
        return out

    def materialize(self, rows):
        """tok, seg (example index in the row, -1 = padding), pos, mask: each [len(rows), T+1]."""
        r, c = len(rows), self.c
        tok = np.full((r, c), self.pad, dtype=np.int64)
        seg = np.full((r, c), -1, dtype=np.int64)
        pos = np.zeros((r, c), dtype=np.int64)
        msk = np.zeros((r, c), dtype=bool)
        ar = np.arange(c, dtype=np.int64)
        for j, plan in enumerate(rows):
            used = 0
            for k, i in enumerate(plan):
                t, m = self.ex.get(i, c)
                n = len(t)
                tok[j, used:used + n] = t
                msk[j, used:used + n] = m != 0
                seg[j, used:used + n] = k
                pos[j, used:used + n] = ar[:n]
                used += n
            pos[j, used:] = ar[:c - used]  # the padding: a segment of its own, positions from 0
        return tok, seg, pos, msk


def make_batch(tok, seg, pos, msk):
    """numpy rows [B, T+1] -> torch input_ids, labels, position_ids, and seg of the inputs."""
    import torch

    same = (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] >= 0)
    labels = np.where(msk[:, 1:] & same, tok[:, 1:], -100)
    return (torch.from_numpy(np.ascontiguousarray(tok[:, :-1])), torch.from_numpy(labels),
            torch.from_numpy(np.ascontiguousarray(pos[:, :-1])),
            torch.from_numpy(np.ascontiguousarray(seg[:, :-1])))


def mask4d(seg_in, attn, dtype):
    """Block-diagonal causal mask [B,1,T,T]: bool (True = attend) for sdpa, additive for eager."""
    import torch

    t = seg_in.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    allowed = (seg_in[:, :, None] == seg_in[:, None, :]) & causal
    allowed = allowed[:, None]
    if attn == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def forward(model, x, pos, seg_in, packing, attn):
    if packing == "position_ids":
        return model(input_ids=x, position_ids=pos, use_cache=False).logits
    if packing == "mask4d":
        return model(input_ids=x, position_ids=pos, attention_mask=mask4d(seg_in, attn, model.dtype),
                     use_cache=False).logits
    if packing == "none":  # the control: plain causal attention over the whole row, positions 0..
        return model(input_ids=x, use_cache=False).logits
    raise ValueError(packing)


# --- modes -------------------------------------------------------------------------------------


def load_base(path, attn):
    import torch
    from transformers import LlamaForCausalLM

    if not os.path.isfile(os.path.join(path, "config.json")):
        die(f"{path}: no config.json (--init must be a Hugging Face model folder)")
    return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attn)


def mode_init(args):
    import torch
    from transformers import LlamaForCausalLM

    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    config = load_config(args.config, manifest, "sdpa")
    config.max_position_embeddings = max(config.max_position_embeddings, args.seq_len)
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(torch.float32)
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
    emit({"tool": "torch", "output": args.output, "params": sum(p.numel() for p in model.parameters()),
          "vocab_size": config.vocab_size, "max_position_embeddings": config.max_position_embeddings})


def mode_check(args, examples, pad_id):
    import torch
    import torch.nn.functional as F

    packer = Packer(examples, args.batch_size, args.seq_len, args.seed, pad_id)
    packer.next_rows(1)  # packs the first epoch
    multi_rows = [r for r in packer.rows if len(r) > 1]  # rows holding several examples first
    rows = (multi_rows + [r for r in packer.rows if len(r) == 1])[:args.check_rows]
    tok, seg, pos, msk = packer.materialize(rows)
    x, labels, p, s = make_batch(tok, seg, pos, msk)
    t = args.seq_len
    results, ref, loss_sep = [], {}, None
    for attn in ("sdpa", "eager"):
        model = load_base(args.init, attn).eval()
        with torch.no_grad():
            # reference: each example (its part of the inputs) alone, positions 0.., no mask
            sep = torch.zeros(x.shape + (model.config.vocab_size,))
            nll, cnt = 0.0, 0
            for r in range(x.shape[0]):
                for k in range(int(seg[r].max()) + 1):
                    idx = np.nonzero(seg[r, :t] == k)[0]
                    if not len(idx):  # only the row's last token: a target, never an input
                        continue
                    a, b = int(idx[0]), int(idx[-1]) + 1
                    lg = model(input_ids=x[r:r + 1, a:b], use_cache=False).logits[0]
                    sep[r, a:b] = lg
                    lab = labels[r, a:b]
                    nll += F.cross_entropy(lg, lab, ignore_index=-100, reduction="sum").item()
                    cnt += int((lab != -100).sum())
            real = torch.from_numpy(seg[:, :t] >= 0)
            ref[attn] = sep
            if attn == "sdpa":
                loss_sep = nll / max(cnt, 1)
            for packing in ("position_ids", "mask4d", "none"):
                lg = forward(model, x, p, s, packing, attn)
                diff = (lg - sep).abs().amax(-1)[real].max().item()
                res = {"packing": packing, "attn": attn, "max_abs_diff": diff,
                       "ok": diff <= args.check_tol}
                if packing == "position_ids" and attn == args.attn:
                    res["loss"] = F.cross_entropy(lg.reshape(-1, lg.size(-1)), labels.reshape(-1),
                                                  ignore_index=-100).item()
                results.append(res)
                note(f"check {packing:<12} {attn:<5} max |logit diff| {diff:.3g}"
                     f"{'' if res['ok'] else '  (differs)'}")
    chosen = next(r for r in results if r["packing"] == args.packing and r["attn"] == args.attn)
    control = [r for r in results if r["packing"] == "none"]
    loss_packed = next(r["loss"] for r in results if "loss" in r)
    loss_ok = abs(loss_packed - loss_sep) <= 1e-4 * max(1.0, abs(loss_sep))
    multi = int(sum(int(seg[r].max()) + 1 > 1 for r in range(len(rows))))
    ok = chosen["ok"] and loss_ok and not any(r["ok"] for r in control)
    emit({"tool": "torch", "mode": "check", "ok": ok, "packing": args.packing, "attn": args.attn,
          "rows": len(rows), "rows_with_several_examples": multi,
          "examples": int(sum(int(seg[r].max()) + 1 for r in range(len(rows)))),
          "tol": args.check_tol, "loss_packed": loss_packed, "loss_separate": loss_sep,
          "results": results})
    if multi == 0:
        note("no checked row holds two examples: the check proves nothing about the mask")
    if not ok:
        sys.exit(1)


def mode_speed(args, examples, pad_id):
    import torch
    import torch.nn.functional as F
    import transformers

    model = load_base(args.init, args.attn)
    if args.seq_len > model.config.max_position_embeddings:
        die(f"--seq-len {args.seq_len} exceeds max_position_embeddings "
            f"{model.config.max_position_embeddings} of {args.init}", 2)
    if int(max(int(t.max()) for t in examples.tokens if len(t))) >= model.config.vocab_size:
        die(f"the shards hold ids >= the model's vocab_size {model.config.vocab_size}")
    torch.manual_seed(args.seed)
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0,
            target_modules=args.lora_targets.split(","), bias="none", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in params)
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=args.lr, betas=(args.beta1, args.beta2))
    packer = Packer(examples, args.batch_size, args.seq_len, args.seed, pad_id)
    note(f"speed: {args.method}, {n_params:,} parameters ({n_train:,} trainable), "
         f"{len(examples)} examples; B={args.batch_size} T={args.seq_len} steps={args.steps} "
         f"threads={torch.get_num_threads()} attn={args.attn} packing={args.packing} "
         f"torch {torch.__version__} transformers {transformers.__version__}"
         + (f" peft {__import__('peft').__version__}" if args.method == "lora" else ""))

    counted = []

    def train_step():
        tok, seg, pos, msk = packer.materialize(packer.next_rows(args.batch_size))
        x, labels, p, s = make_batch(tok, seg, pos, msk)
        logits = forward(model, x, p, s, args.packing, args.attn)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                               ignore_index=-100)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        counted.append(int((labels != -100).sum()))
        return loss.item()

    times = []
    for it in range(args.steps):
        t0 = time.perf_counter()
        loss = train_step()
        times.append((time.perf_counter() - t0) * 1000.0)
        if not math.isfinite(loss):
            die(f"loss is {loss} at step {it + 1}")
    # parameters + gradients (none left after zero_grad: counted as one per trainable parameter)
    # + optimizer state
    state = sum(p.numel() * p.element_size() for p in model.parameters())
    state += sum(p.numel() * p.element_size() for p in params)
    state += sum(v.numel() * v.element_size() for st in optimizer.state.values()
                 for v in st.values() if torch.is_tensor(v))
    kept = np.array(times[SPEED_WARMUP:])
    emit({"tool": "torch", "method": args.method,
          "ms_per_step_median": round(float(np.median(kept)), 3),
          "ms_per_step_p10": round(float(np.percentile(kept, 10)), 3),
          "ms_per_step_p90": round(float(np.percentile(kept, 90)), 3),
          "steps_timed": len(kept), "last_loss": round(loss, 4), "params": n_params,
          "trainable_params": n_train, "train_state_mib": round(state / 2**20, 2),
          "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
          "examples": len(examples), "epochs_started": packer.epoch,
          "rows_per_epoch": len(packer.rows),
          "targets_per_step_mean": round(float(np.mean(counted)), 1),
          "threads": args.threads, "attn": args.attn, "packing": args.packing,
          "batch_size": args.batch_size, "seq_len": args.seq_len,
          **({"lora_r": args.lora_r, "lora_alpha": args.lora_alpha,
              "lora_targets": args.lora_targets} if args.method == "lora" else {})})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("speed", "check", "init"), default="speed")
    p.add_argument("--data", required=True, help="wick SFT shard directory (manifest.json)")
    p.add_argument("--init", help="base model folder (speed, check)")
    p.add_argument("--config", help="LlamaConfig JSON for --mode init")
    p.add_argument("-o", "--output", help="model folder to write (init)")
    p.add_argument("--method", choices=("lora", "full"), default="lora")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--grad-clip", type=float, default=1.0, help="global-norm clip, 0 = off")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    p.add_argument("--packing", choices=("position_ids", "mask4d"), default="position_ids",
                   help="how the block-diagonal causal mask reaches transformers")
    p.add_argument("--check-rows", type=int, default=6, help="packed rows the check compares")
    p.add_argument("--check-tol", type=float, default=1e-4, help="max |logit difference| allowed")
    args = p.parse_args()

    for name in ("batch_size", "seq_len", "steps", "threads", "lora_r", "check_rows"):
        if getattr(args, name) < 1:
            die(f"--{name.replace('_', '-')} must be at least 1", 2)
    if args.mode == "speed" and args.steps <= SPEED_WARMUP:
        die(f"speed mode needs --steps > {SPEED_WARMUP} (the first {SPEED_WARMUP} are discarded)", 2)
    if args.mode == "init" and not (args.config and args.output):
        die("--mode init needs --config and -o OUT_DIR", 2)
    if args.mode != "init" and not args.init:
        die(f"--mode {args.mode} needs --init BASE_DIR", 2)

    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # peft on transformers 5 deprecations
    torch.set_num_threads(args.threads)

    if args.mode == "init":
        mode_init(args)
        return
    examples = Examples(args.data)
    pad_id = int(examples.manifest["eos_id"])
    if args.mode == "check":
        mode_check(args, examples, pad_id)
    else:
        mode_speed(args, examples, pad_id)


if __name__ == "__main__":
    main()
