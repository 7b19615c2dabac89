#!/usr/bin/env python3
"""Random-weight Hugging Face model folders for scripts/bench_precision.sh (nothing downloaded).

    .venv/bin/python scripts/make_precision_models.py small --tokenizer TOKDIR -o DIR
        the small preset (scripts/presets/small.json: vocab 4096, hidden 384, 6 layers, 6 heads,
        intermediate 1536, 256 positions) as bench_eval.sh makes its model-small: transformers'
        LlamaForCausalLM built after torch.manual_seed(SEED), then every weight redrawn from a
        torch.Generator(SEED) (embeddings N(0, 1), matrices N(0, (1.5/sqrt(fan_in))^2), norm
        weights 1 + N(0, 0.1^2): wide enough that greedy decoding does not sit on near-ties and
        repeat a few tokens), saved float32. bos = eos = 0 (wick's `tokenize train` puts
        <|endoftext|> at id 0).
    .venv/bin/python scripts/make_precision_models.py smollm2-135m --tokenizer TOKDIR -o DIR \\
        [--dtype bf16|f32]
        a Llama with SmolLM2-135M's shape, written from memory of its public config.json (not
        downloaded; see SMOLLM2_135M below): vocab 49152, hidden 576, intermediate 1536, 30
        layers, 9 heads / 3 KV heads (head_dim 64), tied embeddings, rope_theta 100000,
        max_position_embeddings 2048, rms_norm_eps 1e-5, initializer_range 0.041666...
        (134.5M parameters). transformers' own init after torch.manual_seed(SEED); saved in
        --dtype (default bf16, as the published checkpoint is). The tokenizer's ids must be
        below 49152 (a wick 4096-token tokenizer is fine: step time does not depend on which
        ids are used).

Both copy tokenizer.json / tokenizer_config.json from --tokenizer (a folder) into the model
folder, write it under a temporary name and rename it when complete, and print one JSON line:
{"output", "params", "dtype", "config"}. Takes a few seconds (smollm2-135m: ~10 s, 270 MB in bf16).
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile

SEED = 20250101
SMALL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets", "small.json")
# SmolLM2-135M (HuggingFaceTB/SmolLM2-135M config.json), from memory. The published file may
# differ in fields that do not change the compute (e.g. its max_position_embeddings); only the
# shape matters for a speed and memory benchmark.
SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-05,
    "initializer_range": 0.041666666666666664,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": True,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "pad_token_id": None,
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def die(msg):
    print(f"make_precision_models: error: {msg}", file=sys.stderr)
    sys.exit(1)


def tokenizer_size(tok):
    path = os.path.join(tok, "tokenizer.json")
    if not os.path.isfile(path):
        die(f"{tok}: no tokenizer.json")
    with open(path) as f:
        t = json.load(f)
    ids = list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens", [])]
    return max(ids) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=("small", "smollm2-135m"))
    ap.add_argument("--tokenizer", required=True, help="folder holding tokenizer.json")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--dtype", choices=("f32", "bf16"), help="default: small f32, smollm2-135m bf16")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    n_tok = tokenizer_size(args.tokenizer)
    torch.manual_seed(SEED)
    if args.model == "small":
        with open(SMALL) as f:
            cfg = json.load(f)
        for k in ("architectures", "model_type"):
            cfg.pop(k)
        cfg.update(bos_token_id=0, eos_token_id=0, pad_token_id=None)
        config = LlamaConfig(**cfg)
        dtype = args.dtype or "f32"
    else:
        cfg = {k: v for k, v in SMOLLM2_135M.items() if k not in ("architectures", "model_type")}
        config = LlamaConfig(**cfg)
        dtype = args.dtype or "bf16"
    if n_tok > config.vocab_size:
        die(f"{args.tokenizer} has {n_tok} ids, more than the model's vocab_size {config.vocab_size}")
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    if args.model == "small":
        g = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
                if name.endswith("norm.weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                elif "embed_tokens" in name:
                    p.copy_(torch.randn(p.shape, generator=g))
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))
    model = model.to({"f32": torch.float32, "bf16": torch.bfloat16}[dtype])

    out = os.path.abspath(args.output)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp", dir=parent)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in TOKENIZER_FILES:
            src = os.path.join(args.tokenizer, name)
            if os.path.isfile(src):
                shutil.copyfile(src, os.path.join(tmp, name))
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(json.dumps({"output": args.output, "params": sum(p.numel() for p in model.parameters()),
                      "dtype": dtype, "model": args.model,
                      "config": {k: getattr(config, k) for k in (
                          "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                          "tie_word_embeddings")}}))


if __name__ == "__main__":
    main()
