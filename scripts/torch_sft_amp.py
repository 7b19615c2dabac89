#!/usr/bin/env python3
"""scripts/torch_sft.py with mixed precision and gradient checkpointing (for bench_precision.sh).

    .venv/bin/python scripts/torch_sft_amp.py --precision bf16 --grad-checkpoint --base-dtype bf16 \\
        --mode speed --method lora --init BASE --data SHARDS --batch-size 4 --seq-len 256 \\
        --steps 10 --threads 2 --lora-r 8 --lora-alpha 16 --lora-targets q_proj,k_proj,v_proj,o_proj

Every argument but the three below goes to torch_sft.py unchanged (see its header: the same
packing, loss, optimizer and timing as wick's `train --task sft`; this wrapper is for
--mode speed, and --mode check works too). Added:

  --precision f32|bf16   bf16: the forward pass runs under torch.autocast("cpu",
                         dtype=torch.bfloat16) (matmuls in bf16, autocast's float32-list ops in
                         float32); the logits are widened with .float() before torch_sft.py's
                         float32 cross-entropy; backward follows the casts. The trainable
                         parameters (LoRA A/B, which PEFT keeps float32 by its default
                         autocast_adapter_dtype=True; or every weight with --method full) and
                         the AdamW state stay float32. Default f32 (torch_sft.py as it is).
  --grad-checkpoint      transformers' activation checkpointing (torch.utils.checkpoint,
                         use_reentrant=False) around every decoder layer: each layer runs again
                         in the backward pass. Non-reentrant checkpointing needs no
                         enable_input_require_grads() for a frozen embedding (PEFT LoRA).
  --base-dtype f32|bf16  the dtype the base model's weights are loaded in (from_pretrained(dtype=));
                         default f32 (torch_sft.py's). bf16 halves the frozen base's memory, as a
                         LoRA user would load a bf16 checkpoint; meant with --method lora.

It wraps torch_sft.py rather than adding flags to it, so that bench_sft.sh's peer stays as it is:
it replaces torch_sft.load_base (dtype, checkpointing) and torch_sft.forward (autocast, .float()),
and adds "precision", "grad_checkpoint" and "base_dtype" to the printed JSON line.
"""

import argparse
import contextlib
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--precision", choices=("f32", "bf16"), default="f32")
    ap.add_argument("--grad-checkpoint", action="store_true")
    ap.add_argument("--base-dtype", choices=("f32", "bf16"), default="f32")
    ours, rest = ap.parse_known_args()
    if "-h" in rest or "--help" in rest:
        print(__doc__)
        sys.exit(0)

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import torch
    import torch_sft
    from torch_train import enable_checkpointing

    base_dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[ours.base_dtype]
    amp = torch.bfloat16 if ours.precision == "bf16" else None
    original_forward = torch_sft.forward

    def load_base(path, attn):
        from transformers import LlamaForCausalLM

        if not os.path.isfile(os.path.join(path, "config.json")):
            torch_sft.die(f"{path}: no config.json (--init must be a Hugging Face model folder)")
        model = LlamaForCausalLM.from_pretrained(path, dtype=base_dtype, attn_implementation=attn)
        if ours.grad_checkpoint:
            enable_checkpointing(model)
        return model

    def forward(model, *args):
        ctx = torch.autocast("cpu", dtype=amp) if amp is not None else contextlib.nullcontext()
        with ctx:
            logits = original_forward(model, *args)
        return logits.float()

    def emit(obj):
        obj.update(precision=ours.precision, grad_checkpoint=ours.grad_checkpoint,
                   base_dtype=ours.base_dtype)
        print(json.dumps(obj), flush=True)

    torch_sft.load_base = load_base
    torch_sft.forward = forward
    torch_sft.emit = emit
    torch_sft.note(f"precision {ours.precision}, grad_checkpoint {ours.grad_checkpoint}, "
                   f"base weights {ours.base_dtype}")
    sys.argv = [os.path.join(here, "torch_sft.py")] + rest
    torch_sft.main()


if __name__ == "__main__":
    main()
