#!/usr/bin/env python3
"""Write PEFT LoRA adapters for testdata/models/llama-gqa and their reference outputs.

Run once (needs torch + transformers + safetensors + peft, see scripts/requirements-models.txt),
after scripts/gen_tiny_llama.py; the output under testdata/models/ is committed and the Rust tests
need no Python:

    .venv/bin/python scripts/gen_lora_fixture.py

Folders written (each: adapter_config.json, adapter_model.safetensors, reference.json,
merged.safetensors):

  lora-plain/   r 4, lora_alpha 8 (scaling alpha/r = 2), q_proj + v_proj only.
  lora-rslora/  r 8, lora_alpha 16, use_rslora (scaling alpha/sqrt(r) = 5.657), all seven linear
                projections of every layer (q/k/v/o, gate/up/down).

adapter_config.json and adapter_model.safetensors are exactly what PeftModel.save_pretrained writes
(tensor names `base_model.model.model.layers.<i>.<self_attn|mlp>.<proj>.lora_<A|B>.weight`,
lora_A [r, in_features], lora_B [out_features, r], f32), except that the model card README.md it
also writes is deleted and `target_modules` (a set to PEFT, written in hash order) is sorted. The base is loaded by the repo-relative path testdata/models/llama-gqa, so that is what
`base_model_name_or_path` says.

PEFT's own init leaves lora_B zero (an adapter that changes nothing); here every lora_A and lora_B
weight is overwritten from a torch.Generator with the adapter's seed (A ~ N(0, 0.1^2), B ~
N(0, 0.05^2), in sorted parameter-name order, A before B of the same module), and the script
asserts the adapter moves some log-prob by more than 1e-2.

reference.json: input_ids (the two sequences of llama-gqa/reference.json), logprobs [2][11] and
last_logits [2][64] with the adapter active (same meaning as in llama-gqa/reference.json),
merged_logprobs (the same from merge_and_unload()'s model), max_abs_logprob_change_vs_base,
max_abs_merged_vs_adapter_logprob_diff, scaling, seed. merged.safetensors: the merged model's full
state dict under the base model.safetensors' tensor names (untied: lm_head.weight included), i.e.
W + scaling * B @ A for every adapted projection, every other tensor as in the base.
"""

import json
import math
import os
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from gen_tiny_llama import ATTN_IMPL, f32, flist, write_json

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BASE = "testdata/models/llama-gqa"  # repo-relative: it ends up in adapter_config.json
SEED = 20250301
MIN_CHANGE = 1e-2  # the adapter must move some log-prob by more than this
MERGE_TOL = 1e-5  # |adapter - merged| log-prob

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = [
    ("plain", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=False), 0),
    ("rslora", dict(r=8, lora_alpha=16, target_modules=ALL_LINEAR, use_rslora=True), 1),
]

torch.use_deterministic_algorithms(True)
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)


def load_base():
    m = AutoModelForCausalLM.from_pretrained(BASE, attn_implementation=ATTN_IMPL, dtype=torch.float32)
    return m.eval()


def forward(model, input_ids):
    """Per-token next-token log-probs [2, 11] and last-position logits [2, V], as gen_tiny_llama."""
    ids = torch.tensor(input_ids)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    lp = torch.log_softmax(logits[:, :-1].double(), dim=-1).float()
    return lp.gather(-1, ids[:, 1:, None])[..., 0], logits[:, -1]


def set_lora_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if ".lora_A." in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif ".lora_B." in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                continue
            n += 1
    return n


def sort_target_modules(path, expect):
    """PEFT keeps target_modules as a set and writes list(set): its order follows the per-process
    string hash. Rewrite it sorted, in PEFT's own format (indent 2, sorted keys, no final newline),
    so reruns give the same bytes; nothing else changes."""
    cfg = json.load(open(path))
    assert sorted(cfg["target_modules"]) == sorted(expect), cfg["target_modules"]
    cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))


def main():
    os.chdir(REPO)
    print(f"peft {peft.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
    base_ref = json.load(open(os.path.join(BASE, "reference.json")))
    input_ids = base_ref["input_ids"]
    base_names = sorted(load_file(os.path.join(BASE, "model.safetensors")))
    base_lp, base_last = forward(load_base(), input_ids)
    # The fixture's own reference.json must still describe the base we load.
    assert torch.allclose(base_lp, torch.tensor(base_ref["logprobs"]), atol=1e-6, rtol=0)
    assert torch.allclose(base_last, torch.tensor(base_ref["last_logits"]), atol=1e-6, rtol=0)

    for name, kw, k in ADAPTERS:
        seed = SEED + k
        d = os.path.join("testdata", "models", f"lora-{name}")
        os.makedirs(d, exist_ok=True)
        cfg = LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **kw)
        torch.manual_seed(seed)
        model = get_peft_model(load_base(), cfg).eval()
        n = set_lora_weights(model, seed)
        assert n == 2 * 2 * len(kw["target_modules"]), n  # 2 layers, A and B
        r, alpha = kw["r"], kw["lora_alpha"]
        scaling = alpha / math.sqrt(r) if kw["use_rslora"] else alpha / r
        for mod in model.modules():
            if hasattr(mod, "scaling") and isinstance(mod.scaling, dict):
                assert math.isclose(mod.scaling["default"], scaling), (mod.scaling, scaling)

        lp, last = forward(model, input_ids)
        change = (lp - base_lp).abs().max().item()
        assert change > MIN_CHANGE, (name, change)

        model.save_pretrained(d)
        card = os.path.join(d, "README.md")
        if os.path.exists(card):
            os.remove(card)
        sort_target_modules(os.path.join(d, "adapter_config.json"), kw["target_modules"])

        # Reload check: a fresh base plus the saved adapter gives the same numbers.
        again = PeftModel.from_pretrained(load_base(), d).eval()
        lp2, last2 = forward(again, input_ids)
        assert torch.equal(lp, lp2) and torch.equal(last, last2), f"{name}: differs after reload"

        merged = model.merge_and_unload().eval()
        mlp, _ = forward(merged, input_ids)
        merge_diff = (mlp - lp).abs().max().item()
        assert merge_diff < MERGE_TOL, (name, merge_diff)
        sd = {n: t.detach().contiguous().clone() for n, t in merged.state_dict().items()}
        assert sorted(sd) == base_names, sorted(set(sd) ^ set(base_names))
        save_file(sd, os.path.join(d, "merged.safetensors"), metadata={"format": "pt"})

        write_json(os.path.join(d, "reference.json"), {
            "input_ids": input_ids,
            "logprobs": flist(lp),
            "last_logits": flist(last),
            "merged_logprobs": flist(mlp),
            "max_abs_logprob_change_vs_base": f32(change),
            "max_abs_merged_vs_adapter_logprob_diff": f32(merge_diff),
            "scaling": f32(scaling),
            "seed": seed,
            "notes": f"base {BASE}; adapter active (PeftModel forward, float32, eager attention); "
            "logprobs/last_logits as in the base reference.json; merged_logprobs from "
            "merge_and_unload() (merged.safetensors); lora_A ~ N(0, 0.1^2), lora_B ~ N(0, 0.05^2) "
            "from torch.Generator(seed) in sorted parameter-name order.",
        })

        print(f"\nlora-{name}: seed {seed}, scaling {scaling:.6g}, max |logprob change| vs base "
              f"{change:.6g}, max |adapter - merged| {merge_diff:.3g}")
        for f in sorted(os.listdir(d)):
            print(f"  {f:28s} {os.path.getsize(os.path.join(d, f)):8d} bytes")
        st = load_file(os.path.join(d, "adapter_model.safetensors"))
        for t in sorted(st):
            print(f"    {t:62s} {list(st[t].shape)} {st[t].dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
