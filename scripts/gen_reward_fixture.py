#!/usr/bin/env python3
"""Write a tiny Hugging Face reward model (LlamaForSequenceClassification, num_labels 1) built on
testdata/models/llama-gqa, and its reference scores.

Run once (needs torch + transformers + safetensors, see scripts/requirements-models.txt), after
scripts/gen_tiny_llama.py; the output under testdata/models/llama-rm/ is committed and the Rust
tests need no Python:

    .venv/bin/python scripts/gen_reward_fixture.py

Files written (testdata/models/llama-rm/):

  config.json        llama-gqa's config with architectures ["LlamaForSequenceClassification"],
                     num_labels 1 (id2label {"0": "LABEL_0"}, label2id {"LABEL_0": 0}, as
                     transformers writes them) and pad_token_id 0 (bos 1, eos 2), as save_pretrained
                     writes it (so RoPE is spelled transformers 5's way, `rope_parameters`).
  model.safetensors  f32: llama-gqa's decoder weights unchanged (`model.embed_tokens.weight`,
                     `model.layers.*`, `model.norm.weight`; llama-gqa's lm_head.weight is dropped)
                     plus `score.weight` [1, 32] ~ N(0, 0.5^2) from torch.Generator(SEED). No bias.
  reference.json     see below.

How transformers 5.24 pools (GenericForSequenceClassification.forward in modeling_layers.py, which
LlamaForSequenceClassification inherits): score = score.weight @ h[b, i] where h is the final-norm
hidden state and, when config.pad_token_id is set and input_ids are given,

    last_non_pad_token = (token_indices * non_pad_mask).argmax(-1)

with non_pad_mask = (input_ids != pad_token_id): i is the RIGHTMOST position whose id is not
pad_token_id (0 if every id is pad). attention_mask plays no part in choosing i; it only masks
attention. So right padding picks the last real token. For left padding the rightmost non-pad token
is the last position, also the last real token; transformers does not derive position_ids from the
attention mask (they are 0..11 for every row), so a left-padded row's real tokens sit at shifted
positions, which RoPE (relative) leaves unchanged up to float rounding: left_scores agree with
scores_unpadded only within float error (the run prints the difference).

reference.json (float32, eval, attn_implementation "eager"):
  input_ids / attention_mask   4 sequences of 12, 9, 5, 1 real ids (3..63), right-padded with
                               pad_token_id to 12.
  last_index                   the index transformers pooled per row (the rule above).
  scores                       model(input_ids, attention_mask).logits[:, 0], [4].
  scores_unpadded              each sequence alone (batch 1, no padding, no mask), [4].
  max_abs_padded_vs_unpadded   max |scores - scores_unpadded|.
  left_input_ids / left_attention_mask / left_last_index / left_scores
                               the same batch LEFT-padded, what transformers returns.
  max_abs_left_vs_unpadded     max |left_scores - scores_unpadded|.
  pad_token_id, seed, notes.
"""

import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

from gen_tiny_llama import ATTN_IMPL, f32, flist, write_json

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BASE = os.path.join(REPO, "testdata", "models", "llama-gqa")
OUT = os.path.join(REPO, "testdata", "models", "llama-rm")
SEED = 20250501
PAD = 0
SCORE_STD = 0.5
TOL = 1e-5  # padded (either side) vs alone
# Real lengths 12, 9, 5, 1; ids in 3..63 (never pad 0, bos 1, eos 2).
SEQS = [
    [17, 42, 5, 33, 8, 60, 21, 13, 47, 38, 26, 11],
    [9, 9, 54, 26, 3, 61, 30, 44, 12],
    [63, 7, 19, 50, 4],
    [35],
]

torch.use_deterministic_algorithms(True)
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)


def pad_batch(seqs, left):
    n = max(len(s) for s in seqs)
    ids, mask = [], []
    for s in seqs:
        p = n - len(s)
        ids.append([PAD] * p + s if left else s + [PAD] * p)
        mask.append([0] * p + [1] * len(s) if left else [1] * len(s) + [0] * p)
    return ids, mask


def last_index(ids):
    """The index transformers 5.24 pools: rightmost position whose id != pad_token_id."""
    ids = torch.tensor(ids)
    non_pad = (ids != PAD).to(torch.int32)
    idx = torch.arange(ids.shape[-1], dtype=torch.int32)
    return (idx * non_pad).argmax(-1).tolist()


def scores(model, ids, mask=None):
    kw = {} if mask is None else {"attention_mask": torch.tensor(mask)}
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), **kw).logits
    assert out.shape == (len(ids), 1), out.shape
    return out[:, 0]


def build():
    cfg = LlamaConfig.from_pretrained(BASE)
    assert (cfg.bos_token_id, cfg.eos_token_id) == (1, 2), (cfg.bos_token_id, cfg.eos_token_id)
    assert PAD not in (cfg.bos_token_id, cfg.eos_token_id)
    cfg.architectures = ["LlamaForSequenceClassification"]
    cfg.num_labels = 1
    cfg.pad_token_id = PAD
    cfg._attn_implementation = ATTN_IMPL
    torch.manual_seed(SEED)
    model = LlamaForSequenceClassification(cfg).to(torch.float32)

    sd = load_file(os.path.join(BASE, "model.safetensors"))
    assert "lm_head.weight" in sd
    del sd["lm_head.weight"]
    g = torch.Generator().manual_seed(SEED)
    sd["score.weight"] = SCORE_STD * torch.randn((1, cfg.hidden_size), generator=g)
    missing, unexpected = model.load_state_dict(sd, strict=True)
    assert not missing and not unexpected, (missing, unexpected)
    return model.eval()


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, seed {SEED}")
    model = build()
    assert model.config.pad_token_id == PAD

    r_ids, r_mask = pad_batch(SEQS, left=False)
    l_ids, l_mask = pad_batch(SEQS, left=True)
    r_last, l_last = last_index(r_ids), last_index(l_ids)
    assert r_last == [len(s) - 1 for s in SEQS], r_last
    assert l_last == [len(r_ids[0]) - 1] * len(SEQS), l_last

    sc = scores(model, r_ids, r_mask)
    alone = torch.cat([scores(model, [s]) for s in SEQS])
    left = scores(model, l_ids, l_mask)
    d_right = (sc - alone).abs().max().item()
    d_left = (left - alone).abs().max().item()
    print(f"scores           {[f32(v) for v in sc.tolist()]}")
    print(f"scores_unpadded  {[f32(v) for v in alone.tolist()]}")
    print(f"left_scores      {[f32(v) for v in left.tolist()]}")
    print(f"max |right-padded - alone| {d_right:.3g}, max |left-padded - alone| {d_left:.3g}")
    assert d_right < TOL and d_left < TOL, (d_right, d_left)
    assert alone.abs().min().item() > 0.1, alone  # clearly non-zero

    # The rule as written in last_index() is the one the model applied: pooled logits equal the
    # per-token scores at those indices.
    with torch.no_grad():
        h = model.model(input_ids=torch.tensor(r_ids), attention_mask=torch.tensor(r_mask)).last_hidden_state
        per_tok = model.score(h)[..., 0]
    assert torch.equal(per_tok[torch.arange(len(SEQS)), torch.tensor(r_last)], sc)

    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    gc = os.path.join(OUT, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    assert sorted(os.listdir(OUT)) == ["config.json", "model.safetensors"], os.listdir(OUT)

    st = load_file(os.path.join(OUT, "model.safetensors"))
    base = load_file(os.path.join(BASE, "model.safetensors"))
    expect = sorted([k for k in base if k != "lm_head.weight"] + ["score.weight"])
    assert sorted(st) == expect, sorted(set(st) ^ set(expect))
    assert all(k.startswith("model.") for k in st if k != "score.weight")
    assert all(torch.equal(st[k], base[k]) for k in st if k != "score.weight")
    assert all(t.dtype == torch.float32 for t in st.values())
    assert list(st["score.weight"].shape) == [1, 32]

    cfg = json.load(open(os.path.join(OUT, "config.json")))
    assert cfg["architectures"] == ["LlamaForSequenceClassification"], cfg["architectures"]
    assert cfg["pad_token_id"] == PAD and len(cfg["id2label"]) == 1, cfg

    ref = {
        "input_ids": r_ids,
        "attention_mask": r_mask,
        "last_index": r_last,
        "scores": flist(sc),
        "scores_unpadded": flist(alone),
        "max_abs_padded_vs_unpadded": f32(d_right),
        "left_input_ids": l_ids,
        "left_attention_mask": l_mask,
        "left_last_index": l_last,
        "left_scores": flist(left),
        "max_abs_left_vs_unpadded": f32(d_left),
        "pad_token_id": PAD,
        "seed": SEED,
        "notes": "LlamaForSequenceClassification, num_labels 1, float32, eval, attn_implementation=eager; "
        "score = score.weight @ final-norm hidden state at last_index, where transformers 5.24 takes "
        "the rightmost position whose input id != pad_token_id ((arange * (ids != pad)).argmax(-1)); "
        "attention_mask only masks attention, position_ids are 0..11 for every row (not from the "
        "mask). scores_unpadded: each sequence alone, batch 1, no mask. left_*: the same batch "
        "left-padded; the pooled index is the last position and the real tokens sit at shifted "
        "positions, equal to scores_unpadded within float rounding (RoPE is relative).",
    }
    write_json(os.path.join(OUT, "reference.json"), ref)

    # Reload check: AutoModelForSequenceClassification on the saved folder gives the same numbers.
    again = AutoModelForSequenceClassification.from_pretrained(
        OUT, attn_implementation=ATTN_IMPL, dtype=torch.float32).eval()
    assert type(again).__name__ == "LlamaForSequenceClassification"
    assert again.config.pad_token_id == PAD and again.config.num_labels == 1
    assert torch.equal(scores(again, r_ids, r_mask), sc)
    assert torch.equal(scores(again, l_ids, l_mask), left)

    print(f"\nllama-rm: last_index {r_last}, left_last_index {l_last}")
    for f in sorted(os.listdir(OUT)):
        print(f"  {f:28s} {os.path.getsize(os.path.join(OUT, f)):8d} bytes")
    for n in sorted(st):
        print(f"    {n:45s} {list(st[n].shape)} {st[n].dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
