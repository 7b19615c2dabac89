#!/usr/bin/env python3
"""scripts/hf_eval.py with the model loaded in another dtype (for scripts/bench_precision.sh).

    .venv/bin/python scripts/hf_eval_dtype.py --dtype bf16 --model DIR --mode ppl --data SHARDS ...
    .venv/bin/python scripts/hf_eval_dtype.py --dtype bf16 --model DIR --mode generate --prompts P ...

Every argument but --dtype goes to hf_eval.py unchanged (see its header for the modes, what is
timed and the JSON line it prints). --dtype f32 | bf16 | f16 (default f32, which is hf_eval.py
itself) is the dtype AutoModelForCausalLM.from_pretrained loads the weights in: the model then
runs wholly in that dtype, as transformers runs a model loaded with dtype=torch.bfloat16 (its
RMSNorm and attention softmax upcast to float32 internally; matmuls, activations and logits in
the low precision). ppl mode widens the logits to float32 before the log-softmax (hf_eval.py's
`logits.float()`), so the per-token log-probs are float32 values of bf16 logits; generate is
greedy on the low-precision logits. The JSON line gets "dtype" added.

This is a wrapper rather than a flag of hf_eval.py so that hf_eval.py (bench_eval.sh's peer) stays
as it is: it replaces AutoModelForCausalLM.from_pretrained's dtype= argument and adds "dtype" to
the printed line; nothing else changes.
"""

import json
import os
import sys

DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def main():
    argv = sys.argv[1:]
    dtype = "f32"
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--dtype" and i + 1 < len(argv):
            dtype = argv[i + 1]
            i += 2
            continue
        if a.startswith("--dtype="):
            dtype = a.split("=", 1)[1]
            i += 1
            continue
        rest.append(a)
        i += 1
    if dtype not in DTYPES:
        print(f"hf_eval_dtype: error: --dtype {dtype!r}: want one of {', '.join(DTYPES)}",
              file=sys.stderr)
        sys.exit(2)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hf_eval
    import torch
    import transformers

    want = getattr(torch, DTYPES[dtype])
    auto = transformers.AutoModelForCausalLM
    original = auto.from_pretrained

    def from_pretrained(cls, *args, **kwargs):
        kwargs["dtype"] = want
        return original(*args, **kwargs)

    auto.from_pretrained = classmethod(from_pretrained)

    # hf_eval.main prints one JSON line; add the dtype to it.
    real_print = print

    def print_with_dtype(*args, **kwargs):
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith("{"):
            try:
                obj = json.loads(args[0])
            except ValueError:
                obj = None
            if isinstance(obj, dict) and obj.get("tool") == "transformers":
                obj["dtype"] = dtype
                args = (json.dumps(obj),)
        real_print(*args, **kwargs)

    hf_eval.print = print_with_dtype
    print(f"hf_eval_dtype: model weights in {DTYPES[dtype]}", file=sys.stderr)
    sys.argv = [os.path.join(os.path.dirname(hf_eval.__file__), "hf_eval.py")] + rest
    hf_eval.main()


if __name__ == "__main__":
    main()
