"""Checks that PEFT loads an adapter `train --method lora` wrote, and that it scores a text as
wick does (run by hand; needs peft, transformers, torch from scripts/requirements-models.txt).

  .venv/bin/python scripts/check_peft_load.py BASE_DIR ADAPTER_DIR "some text"

Prints PEFT's mean NLL per token of the text after the base's BOS (EOS when it has none), the
number `ppl --model BASE_DIR --adapter ADAPTER_DIR --per-record` prints for {"text": ...}.
Measured: a wick LoRA run (tiny preset, q/v/down, r 8) gave 6.184207439 here and 6.184207201 in
wick (peft 0.21.2, transformers 5.24.0).
"""
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

if len(sys.argv) != 4:
    sys.exit(__doc__)
base_dir, adapter_dir, text = sys.argv[1:]
model = PeftModel.from_pretrained(
    AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), adapter_dir
).eval()
tok = AutoTokenizer.from_pretrained(base_dir)
cfg = json.load(open(f"{base_dir}/config.json"))
prefix = cfg.get("bos_token_id")
if prefix is None:
    eos = cfg.get("eos_token_id")
    prefix = eos[0] if isinstance(eos, list) else eos
ids = [prefix] + tok(text, add_special_tokens=False)["input_ids"]
x = torch.tensor([ids])
with torch.no_grad():
    lp = torch.log_softmax(model(x).logits[0, :-1], -1)
nll = -lp.gather(1, x[0, 1:, None]).mean().item()
print(json.dumps({"peft_nll": nll, "tokens": len(ids) - 1}))
