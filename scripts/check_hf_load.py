#!/usr/bin/env python3
"""Checks that Hugging Face transformers loads a model folder written by wick, and prints its
log-probs on a few ids so wick's own numbers can be compared with transformers'.

  .venv/bin/python scripts/check_hf_load.py DIR [--ids 1,2,3,...] [--text "..."] [--dtype float32|auto]
                                                 [--no-tokenizer] [--threads N]

Needs torch + transformers + safetensors (scripts/requirements-models.txt).

- AutoModelForCausalLM.from_pretrained(DIR, output_loading_info=True) (float32 unless --dtype auto):
  fails (exit 1) when any weight is missing (i.e. would be newly initialised), unexpected (in the
  file but not used), or of the wrong shape, when loading reports errors, when transformers logs a
  warning about such keys, or when a parameter is not finite.
- AutoTokenizer.from_pretrained(DIR) must load too (--no-tokenizer skips it; then --ids is needed).
- The ids: --ids (comma-separated), else the tokenizer's encoding of --text (default
  "To be, or not to be"; no special tokens added). At least 2 are needed, all below vocab_size.
- One forward pass (torch.inference_mode, eval mode) over the ids; logprobs[i] is
  log p(ids[i+1] | ids[:i+1]) from the float32 log-softmax of the logits (len(ids) - 1 values).

Prints one JSON line on stdout:
  {"ok": true, "ids": [...], "logprobs": [...], "param_count": N, "model_type": "...",
   "architectures": [...], "dtype": "float32", "vocab_size": V, "tokenizer": true, "warnings": [...]}
param_count counts each parameter tensor once (a tied lm_head is not counted twice). "warnings" are
other warnings transformers logged while loading (not about weights), for information.
On failure: {"ok": false, "error": "..."} on stdout, the same message on stderr, exit status 1.
"""

import argparse
import json
import logging
import math
import os
import re
import sys

# Warnings from the loader that mean weights were not matched up with the model.
KEY_WORDS = ("missing", "unexpected", "newly initialized", "newly initialised", "not used",
             "not initialized", "mismatch", "were not used", "did not match")


def fail(msg):
    print(json.dumps({"ok": False, "error": msg}), flush=True)
    print(f"check_hf_load: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is still a warning
            msg = str(record.msg)
        self.messages.append(re.sub(r"\x1b\[[0-9;]*m", "", msg))  # no terminal colours


def main():
    head, _, rest = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=head, epilog=rest,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="model folder (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("--ids", help="comma-separated token ids (default: the tokenizer's encoding of --text)")
    ap.add_argument("--text", default="To be, or not to be", help="text to encode when --ids is not given")
    ap.add_argument("--dtype", default="float32", choices=["float32", "auto"],
                    help="float32 (default) or the dtype stored in the folder")
    ap.add_argument("--no-tokenizer", action="store_true", help="do not load the tokenizer (needs --ids)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    if not os.path.isfile(os.path.join(args.dir, "config.json")):
        fail(f"{args.dir}: no config.json")
    ids = None
    if args.ids is not None:
        try:
            ids = [int(x) for x in args.ids.replace(" ", "").split(",") if x != ""]
        except ValueError:
            fail(f"--ids {args.ids!r}: want comma-separated integers")
    if args.no_tokenizer and ids is None:
        fail("--no-tokenizer needs --ids")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    collect = Collect()
    tf_logger = transformers.utils.logging.get_logger("transformers")
    tf_logger.addHandler(collect)
    transformers.utils.logging.set_verbosity_warning()

    dtype = torch.float32 if args.dtype == "float32" else "auto"
    try:
        model, info = AutoModelForCausalLM.from_pretrained(args.dir, dtype=dtype, output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - any load failure is the answer
        fail(f"AutoModelForCausalLM.from_pretrained({args.dir}) raised {type(e).__name__}: {e}")
    load_warnings = list(collect.messages)

    problems = []
    for key, what in (("missing_keys", "missing (would be newly initialised)"),
                      ("unexpected_keys", "unexpected (in the file, not used)"),
                      ("mismatched_keys", "of the wrong shape")):
        keys = sorted(str(k) for k in (info.get(key) or []))
        if keys:
            problems.append(f"{len(keys)} weight(s) {what}: {', '.join(keys[:20])}"
                            + (" ..." if len(keys) > 20 else ""))
    if info.get("error_msgs"):
        problems.append("loading errors: " + "; ".join(str(m) for m in info["error_msgs"]))
    key_warnings = [m for m in load_warnings if any(w in m.lower() for w in KEY_WORDS)]
    if key_warnings and not problems:  # the report repeats what loading info already says
        problems.append("transformers warned while loading: " + " | ".join(key_warnings))
    if problems:
        fail(f"{args.dir}: " + "; ".join(problems))

    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        fail(f"{args.dir}: non-finite values in {', '.join(bad[:10])}")

    have_tokenizer = False
    if not args.no_tokenizer:
        try:
            tokenizer = AutoTokenizer.from_pretrained(args.dir)
        except Exception as e:  # noqa: BLE001
            fail(f"AutoTokenizer.from_pretrained({args.dir}) raised {type(e).__name__}: {e} "
                 "(--no-tokenizer --ids ... checks the model alone)")
        have_tokenizer = True
        if ids is None:
            ids = tokenizer(args.text, add_special_tokens=False)["input_ids"]

    vocab = model.config.vocab_size
    if len(ids) < 2:
        fail(f"need at least 2 ids, got {ids}")
    if any(i < 0 or i >= vocab for i in ids):
        fail(f"ids {ids} are not all in [0, {vocab})")

    model.eval()
    with torch.inference_mode():
        x = torch.tensor([ids], dtype=torch.long)
        logits = model(input_ids=x, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[0, :-1], dim=-1)
        lp = logp.gather(-1, x[0, 1:, None])[:, 0].tolist()
    if not all(math.isfinite(v) for v in lp):
        fail(f"non-finite log-probs {lp}")

    seen, count = set(), 0
    for p in model.parameters():  # each tensor once (tied weights share one)
        if id(p) not in seen:
            seen.add(id(p))
            count += p.numel()
    out = {
        "ok": True,
        "ids": ids,
        "logprobs": lp,
        "param_count": count,
        "model_type": model.config.model_type,
        "architectures": getattr(model.config, "architectures", None),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "vocab_size": vocab,
        "tokenizer": have_tokenizer,
        "warnings": [m for m in load_warnings if m not in key_warnings],
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
