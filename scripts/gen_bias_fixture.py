#!/usr/bin/env python3
"""Write a tiny Llama with every bias transformers' Llama can have, and its reference outputs.

Run once (needs torch + transformers + safetensors, see scripts/requirements-models.txt); the output
under testdata/models/ is committed and the Rust tests need no Python:

    .venv/bin/python scripts/gen_bias_fixture.py

Made with torch 2.15.0 (CPU), transformers 5.25.0, safetensors 0.8.0.

Folder written: llama-bias/ (config.json, generation_config.json, model.safetensors,
reference.json): LlamaForCausalLM with `attention_bias: true` (biases on q, k, v *and* o_proj, as
transformers' LlamaAttention has them) and `mlp_bias: true` (biases on gate, up and down_proj, as
its LlamaMLP), GQA (4 heads / 2 KV heads), untied head. Every bias is drawn non-zero, so a loader
that drops any of them (o_proj's, say, as Qwen2 has none) fails the comparison.

reference.json is written as by scripts/gen_tiny_llama.py (log-probs, last logits, greedy
continuations with and without the cache), plus "grads": the mean cross-entropy of the reference
batch and the first 8 values of the gradient of each of layer 0's biases and of one weight, for
checking the training path (its fused q/k/v and gate/up products carry the biases too).
"""

import os
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from gen_tiny_llama import (ATTN_IMPL, INPUT_IDS, MIN_GAP, ROOT, SEED, VOCAB, f32, flist, randomize,
                            reference, save, verify, write_json)

NAME = "llama-bias"


def grads(model):
    """Loss and gradients of the mean next-token cross-entropy of the reference batch."""
    model.train()  # no dropout in this config: the same numbers as eval
    model.zero_grad()
    ids = torch.tensor(INPUT_IDS)
    logits = model(ids).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    loss.backward()
    watch = [f"model.layers.0.{m}.bias" for m in
             ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    watch.append("model.layers.1.self_attn.o_proj.weight")
    params = dict(model.named_parameters())
    out = {
        "loss": f32(loss.item()),
        "notes": "mean cross-entropy of logits[:, :-1] against input_ids[:, 1:] (22 tokens); "
        "first 8 values of each flattened gradient",
        "first8": {n: flist(params[n].grad.flatten()[:8]) for n in watch},
    }
    model.zero_grad()
    model.eval()
    return out


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, seed {SEED}")
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                      max_position_embeddings=128, hidden_act="silu", attn_implementation=ATTN_IMPL,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, rope_theta=10000.0,
                      rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=True, mlp_bias=True)
    for j in range(100):
        seed = SEED + 3000 + j
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg).to(torch.float32)
        randomize(model, seed)
        ref = reference(model)
        if ref["greedy_min_top2_gap"] > MIN_GAP:
            break
    assert ref["greedy_min_top2_gap"] > MIN_GAP
    ref["seed"] = seed
    ref["grads"] = grads(model)
    d = save(model, NAME)
    st = load_file(os.path.join(d, "model.safetensors"))
    for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert f"model.layers.0.self_attn.{m}.bias" in st, m
    for m in ("gate_proj", "up_proj", "down_proj"):
        assert f"model.layers.0.mlp.{m}.bias" in st, m
    write_json(os.path.join(d, "reference.json"), ref)
    verify(d, ref)
    print(f"\n{NAME}: seed {seed}, greedy {ref['greedy']['tokens']} (min top-2 gap {ref['greedy_min_top2_gap']})")
    for f in sorted(os.listdir(d)):
        print(f"  {f:28s} {os.path.getsize(os.path.join(d, f)):8d} bytes")
    for n in sorted(st):
        print(f"    {n:45s} {list(st[n].shape)} {st[n].dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
