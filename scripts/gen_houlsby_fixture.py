#!/usr/bin/env python3
"""Write a Houlsby bottleneck adapter for testdata/models/llama-gqa and its PyTorch reference.

Run once (needs torch + transformers + safetensors, see scripts/requirements-models.txt), after
scripts/gen_tiny_llama.py; the output under testdata/models/houlsby/ is committed and the Rust tests
need no Python:

    .venv/bin/python scripts/gen_houlsby_fixture.py

The adapter format is wick's own (PEFT has no Houlsby adapter). In every decoder layer l there are
two bottlenecks, each h <- h + up(silu(down(h))) with down = Linear(hidden -> m, bias) and up =
Linear(m -> hidden, bias), silu(x) = x * sigmoid(x), m = hidden / reduction_factor:

  attn_adapter  on the output of self_attn.o_proj, before the residual add;
  mlp_adapter   on the output of mlp.down_proj, before the residual add.

Here hidden 32, reduction_factor 4, so m = 8. The reference is independent of wick: transformers'
LlamaForCausalLM (float32, eval, eager attention) with forward hooks on every layer's
self_attn.o_proj and mlp.down_proj that return out + up(silu(down(out))) (F.linear + F.silu).

Files written to testdata/models/houlsby/:

  adapter_config.json        {"peft_type": "HOULSBY", "base_model_name_or_path", "reduction_factor",
                             "bottleneck_size", "non_linearity": "silu", "placement", "up_init":
                             "zeros", "library": "wick"} (up_init says how wick initialises a new
                             adapter; the weights saved here are random, see below).
  adapter_model.safetensors  f32, `model.layers.<l>.<attn_adapter|mlp_adapter>.<down|up>.<weight|bias>`:
                             down.weight [m, hidden], down.bias [m], up.weight [hidden, m],
                             up.bias [hidden].
  reference.json             input_ids (the two sequences of llama-gqa/reference.json), logprobs
                             [2][11] and last_logits [2][64] with the adapter active (same meaning
                             as in llama-gqa/reference.json), max_abs_logprob_change_vs_base,
                             max_abs_zero_up_vs_base_logprob_diff (the same forward with every up
                             weight and bias zeroed, against the base), reduction_factor,
                             bottleneck_size, seed, notes.

Every tensor is random and non-zero, drawn from one torch.Generator(SEED) in the order layer 0..,
attn_adapter then mlp_adapter, down.weight, down.bias, up.weight, up.bias: weights ~ N(0, 0.3^2),
biases ~ N(0, 0.1^2). The script asserts the adapter moves some log-prob by more than 1e-2 and
that zeroing the up projections gives back the base log-probs to 1e-6.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from gen_tiny_llama import ATTN_IMPL, f32, flist, write_json

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BASE = "testdata/models/llama-gqa"  # repo-relative: it ends up in adapter_config.json
OUT = "testdata/models/houlsby"
SEED = 20250401
REDUCTION_FACTOR = 4
W_STD, B_STD = 0.3, 0.1
MIN_CHANGE = 1e-2  # the adapter must move some log-prob by more than this
ZERO_TOL = 1e-6  # |zero-up adapter - base| log-prob
SITES = [("attn_adapter", "self_attn.o_proj"), ("mlp_adapter", "mlp.down_proj")]

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


def make_adapter(n_layers, hidden, m, seed):
    g = torch.Generator().manual_seed(seed)
    shapes = [("down.weight", [m, hidden], W_STD), ("down.bias", [m], B_STD),
              ("up.weight", [hidden, m], W_STD), ("up.bias", [hidden], B_STD)]
    sd = {}
    for l in range(n_layers):
        for ad, _ in SITES:
            for suffix, shape, std in shapes:
                t = std * torch.randn(shape, generator=g, dtype=torch.float32)
                assert (t != 0).all()
                sd[f"model.layers.{l}.{ad}.{suffix}"] = t.contiguous()
    return sd


def bottleneck(sd, prefix):
    dw, db = sd[prefix + ".down.weight"], sd[prefix + ".down.bias"]
    uw, ub = sd[prefix + ".up.weight"], sd[prefix + ".up.bias"]

    def hook(module, args, out):
        hook.calls += 1
        return out + F.linear(F.silu(F.linear(out, dw, db)), uw, ub)

    hook.calls = 0
    return hook


def with_adapter(sd, n_layers):
    """The base model with a forward hook on each adapted projection; returns (model, hooks)."""
    model = load_base()
    hooks = []
    for l in range(n_layers):
        layer = model.model.layers[l]
        for ad, site in SITES:
            h = bottleneck(sd, f"model.layers.{l}.{ad}")
            layer.get_submodule(site).register_forward_hook(h)
            hooks.append(h)
    return model, hooks


def main():
    os.chdir(REPO)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, seed {SEED}")
    base_ref = json.load(open(os.path.join(BASE, "reference.json")))
    input_ids = base_ref["input_ids"]
    base = load_base()
    cfg = base.config
    hidden, n_layers = cfg.hidden_size, cfg.num_hidden_layers
    assert hidden % REDUCTION_FACTOR == 0
    m = hidden // REDUCTION_FACTOR
    base_lp, base_last = forward(base, input_ids)
    # The base's own reference.json must still describe the base we load.
    ref_lp = torch.tensor(base_ref["logprobs"])
    assert torch.allclose(base_lp, ref_lp, atol=1e-6, rtol=0)
    assert torch.allclose(base_last, torch.tensor(base_ref["last_logits"]), atol=1e-6, rtol=0)

    sd = make_adapter(n_layers, hidden, m, SEED)
    model, hooks = with_adapter(sd, n_layers)
    lp, last = forward(model, input_ids)
    assert all(h.calls == 1 for h in hooks), [h.calls for h in hooks]
    change = (lp - ref_lp).abs().max().item()
    change_logits = (last - base_last).abs().max().item()
    print(f"adapter vs base reference.json: max |logprob change| {change:.6g}, "
          f"max |last logit change| {change_logits:.6g} ({len(hooks)} hooks fired once each)")
    assert change > MIN_CHANGE, change

    zero = {k: (torch.zeros_like(t) if ".up." in k else t) for k, t in sd.items()}
    zmodel, zhooks = with_adapter(zero, n_layers)
    zlp, zlast = forward(zmodel, input_ids)
    assert all(h.calls == 1 for h in zhooks), [h.calls for h in zhooks]
    zero_diff = (zlp - ref_lp).abs().max().item()
    zero_logit_diff = (zlast - torch.tensor(base_ref["last_logits"])).abs().max().item()
    print(f"up weights/bias zeroed vs base reference.json: max |logprob diff| {zero_diff:.3g}, "
          f"max |last logit diff| {zero_logit_diff:.3g}")
    assert zero_diff <= ZERO_TOL, zero_diff

    os.makedirs(OUT, exist_ok=True)
    adapter_cfg = {
        "peft_type": "HOULSBY",
        "base_model_name_or_path": BASE,
        "reduction_factor": REDUCTION_FACTOR,
        "bottleneck_size": m,
        "non_linearity": "silu",
        "placement": "after self_attn.o_proj and after mlp.down_proj, before each residual add",
        "up_init": "zeros",
        "library": "wick",
    }
    with open(os.path.join(OUT, "adapter_config.json"), "w") as f:
        f.write(json.dumps(adapter_cfg, indent=2) + "\n")
    path = os.path.join(OUT, "adapter_model.safetensors")
    save_file(sd, path, metadata={"format": "pt"})

    # Reload check: the saved tensors give the same numbers.
    again, _ = with_adapter(load_file(path), n_layers)
    lp2, last2 = forward(again, input_ids)
    assert torch.equal(lp, lp2) and torch.equal(last, last2), "differs after reload"

    write_json(os.path.join(OUT, "reference.json"), {
        "input_ids": input_ids,
        "logprobs": flist(lp),
        "last_logits": flist(last),
        "max_abs_logprob_change_vs_base": f32(change),
        "max_abs_zero_up_vs_base_logprob_diff": f32(zero_diff),
        "reduction_factor": REDUCTION_FACTOR,
        "bottleneck_size": m,
        "seed": SEED,
        "notes": f"base {BASE}; transformers LlamaForCausalLM (float32, eval, eager attention) "
        "with forward hooks on every layer's self_attn.o_proj (attn_adapter) and mlp.down_proj "
        "(mlp_adapter) returning out + up(silu(down(out))); logprobs/last_logits as in the base "
        "reference.json; weights ~ N(0, 0.3^2), biases ~ N(0, 0.1^2) from torch.Generator(seed), "
        "layer by layer, attn before mlp, down.weight, down.bias, up.weight, up.bias.",
    })

    print(f"\n{OUT}: hidden {hidden}, reduction_factor {REDUCTION_FACTOR}, bottleneck {m}")
    for f in sorted(os.listdir(OUT)):
        print(f"  {f:28s} {os.path.getsize(os.path.join(OUT, f)):8d} bytes")
    st = load_file(path)
    for t in sorted(st):
        print(f"    {t:44s} {list(st[t].shape)} {st[t].dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
