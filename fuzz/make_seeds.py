#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets, fuzz/seeds/<target>/ (a few KB
each), from testdata/ and small hand-made cases. Python 3 standard library only; run from the
repository root: python3 fuzz/make_seeds.py. scripts/fuzz.sh adds larger seeds from
testdata/ (the real test models) to the working corpus at run time.

A target whose input holds several files takes them joined by SEP (fuzz/src/lib.rs)."""

import json
import os
import shutil
import struct

SEP = b"\n--wick-part--\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")


def testdata(rel):
    with open(os.path.join(ROOT, "testdata", rel), "rb") as f:
        return f.read()


def join(*parts):
    return SEP.join(parts)


def seed(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def jsonl():
    seed("jsonl", "records", b'{"id": "a", "text": "To be, or not to be"}\n{"id": "b", "text": "\xe6\x98\x8e\xe6\x9c\x88"}\n')
    seed("jsonl", "bom-crlf-blank", b'\xef\xbb\xbf{"a": 1}\r\n\r\n  \n{"b": [1, 2.5e-3, null, true]}\r\n')
    seed("jsonl", "bad-lines", b'{"a": 1}\n[1, 2]\n"s"\n{"a": \xff}\n{"a":\n\xef\xbb\xbf{"late bom": 1}\n{"u": "\\ud800"}')
    seed("jsonl", "long-line", b'{"text": "' + b"x" * 40 + b'"}\n{"n": 1}\n')
    seed("jsonl", "gpt2-ids", b"\n".join(testdata("fixtures/gpt2_ids.jsonl").split(b"\n")[:3]) + b"\n")


def header(magic, version, count):
    return struct.pack("<3i", magic, version, count) + b"\0" * (1024 - 12)


def shard(tokens, u32=False):
    if u32:
        return header(20240801, 7, len(tokens)) + struct.pack(f"<{len(tokens)}I", *tokens)
    return header(20240520, 1, len(tokens)) + struct.pack(f"<{len(tokens)}H", *tokens)


def docs(starts):
    return header(20241129, 1, len(starts)) + struct.pack(f"<{len(starts)}Q", *starts)


def mask(bits):
    return header(20241130, 1, len(bits)) + bytes(bits)


def manifest(dtype, vocab, entries, has_mask):
    splits = {}
    for e in entries:
        t = splits.setdefault(e["split"], {"tokens": 0, "documents": 0, "shards": 0})
        t["tokens"] += e["tokens"]
        t["documents"] += e["documents"]
        t["shards"] += 1
    return json.dumps({
        "format": "wick-shards", "version": 1, "created_by": "fuzz/make_seeds.py",
        "tokenizer": {"file": "tokenizer.json", "xxh3_128": "0" * 32},
        "vocab_size": vocab, "eos_id": vocab - 1, "dtype": dtype, "val_fraction": 0.1,
        "split_key": "id", "shuffle_seed": 7, "shard_tokens": 1 << 20, "has_mask": has_mask,
        "splits": splits, "shards": entries,
    }, indent=1).encode()


def entry(name, split, tokens, documents, with_mask):
    return {
        "file": f"{name}.bin", "split": split, "tokens": tokens, "documents": documents,
        "xxh3": "0" * 16, "docs_file": f"{name}.docs", "docs_xxh3": "0" * 16,
        "mask_file": f"{name}.mask" if with_mask else None,
        "mask_xxh3": "0" * 16 if with_mask else None,
    }


def shards():
    # SFT-style: documents ending in EOS (99), masks on the responses.
    train = [5, 6, 7, 99, 8, 9, 10, 11, 99, 12, 13, 99, 14, 15, 16, 17, 18, 99]
    train_starts = [0, 4, 9, 12]
    train_mask = [0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1]
    val = [20, 21, 22, 99, 23, 24, 99]
    val_starts = [0, 4]
    val_mask = [0, 1, 1, 1, 0, 1, 1]
    m = manifest("uint16", 100, [
        entry("train", "train", len(train), len(train_starts), True),
        entry("val", "val", len(val), len(val_starts), True),
    ], True)
    seed("shards", "sft-u16", join(m, shard(train), docs(train_starts), mask(train_mask),
                                  shard(val), docs(val_starts), mask(val_mask)))
    toks = list(range(1000, 1040))
    m = manifest("uint32", 70000, [entry("train", "train", 40, 2, False)], False)
    seed("shards", "pretrain-u32", join(m, shard(toks, True), docs([0, 17]), b""))
    # A directory of llm.c shards (no manifest): the first 64 GPT-2 tokens of the fixture.
    gpt2 = testdata("fixtures/llmc/gpt2_u16.bin")
    n = 64
    llmc = header(20240520, 1, n) + gpt2[1024:1024 + 2 * n]
    seed("shards", "llmc-dir", join(b"", llmc, b"", b"", llmc))


def safetensors(tensors, dtype="F32"):
    """tensors: {name: (shape, list of floats)} -> bytes of a .safetensors file."""
    fmt = {"F32": "<{}f", "F16": "<{}e", "F64": "<{}d"}[dtype]
    head, body = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack(fmt.format(len(values)), *values)
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def values(n, k):
    return [((i * 7 + k) % 11 - 5) / 10 for i in range(n)]


def tiny_model(cfg, extra_tensors=(), drop=()):
    v, h, i, L = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg.get("head_dim", h // heads)
    qwen = cfg.get("model_type") == "qwen2"
    t = {"model.embed_tokens.weight": ([v, h], values(v * h, 1)), "model.norm.weight": ([h], [1.0] * h)}
    for l in range(L):
        p = f"model.layers.{l}"
        for name, out, inp in [("self_attn.q_proj", heads * hd, h), ("self_attn.k_proj", kv * hd, h),
                               ("self_attn.v_proj", kv * hd, h), ("self_attn.o_proj", h, heads * hd),
                               ("mlp.gate_proj", i, h), ("mlp.up_proj", i, h), ("mlp.down_proj", h, i)]:
            t[f"{p}.{name}.weight"] = ([out, inp], values(out * inp, l + len(name)))
            if qwen and name[-6:] in ("q_proj", "k_proj", "v_proj"):
                t[f"{p}.{name}.bias"] = ([out], values(out, 3))
        t[f"{p}.input_layernorm.weight"] = ([h], [1.0] * h)
        t[f"{p}.post_attention_layernorm.weight"] = ([h], [1.0] * h)
    for name, shape in extra_tensors:
        n = 1
        for d in shape:
            n *= d
        t[name] = (shape, values(n, 5))
    for name in drop:
        t.pop(name)
    return t


def models():
    base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 8, "hidden_size": 4,
            "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 16,
            "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
    cfg = dict(base)
    seed("model_folder", "llama", join(json.dumps(cfg).encode(),
                                       safetensors(tiny_model(cfg, [("lm_head.weight", [8, 4])]))))
    cfg = dict(base, tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 5e5})
    del cfg["rope_theta"]
    seed("model_folder", "llama-tied-f16", join(json.dumps(cfg).encode(), safetensors(tiny_model(cfg), "F16")))
    cfg = dict(base, model_type="qwen2", architectures=["Qwen2ForCausalLM"], num_hidden_layers=2,
               use_sliding_window=False, sliding_window=None)
    seed("model_folder", "qwen2", join(json.dumps(cfg).encode(),
                                       safetensors(tiny_model(cfg, [("lm_head.weight", [8, 4])]))))
    cfg = dict(base, architectures=["LlamaForSequenceClassification"], num_labels=1, pad_token_id=0)
    seed("model_folder", "reward", join(json.dumps(cfg).encode(),
                                        safetensors(tiny_model(cfg, [("score.weight", [1, 4])]))))
    # The real test model's config alone (its weights are added by scripts/fuzz.sh).
    seed("model_folder", "llama-gqa-config", testdata("models/llama-gqa/config.json"))


def adapters():
    for name in ["lora-plain", "houlsby"]:
        seed("adapter_folder", name, join(testdata(f"models/{name}/adapter_config.json"),
                                          testdata(f"models/{name}/adapter_model.safetensors")))


DEFAULT = "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
LLAMA2 = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}"
TOOLS = """{%- set ns = namespace(first=true) -%}
{%- for message in messages -%}
  {%- if message.role == 'system' and loop.first %}<<SYS>>{{ message.content | tojson(indent=2) }}<</SYS>>
  {%- elif message.tool_calls is defined %}{% for c in message.tool_calls %}{{ c | tojson }}{% endfor %}
  {%- else %}{{ '<' ~ message.role ~ '>' }}{{ message.content | replace('a', 'b') | upper }}{{ '</' ~ message.role ~ '>\\n' }}
  {%- endif -%}
  {%- set ns.first = false -%}
{%- endfor -%}
{%- if add_generation_prompt %}<assistant>{% endif -%}"""


def templates():
    conv = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "明月"},
                         {"role": "assistant", "content": "几时有"}]}
    seed("chat_template", "default-chat", join(DEFAULT.encode(), json.dumps(conv).encode(), b"<s>", b"</s>"))
    seed("chat_template", "chatml-prompt-completion",
         join(CHATML.encode(), json.dumps({"prompt": "Continue:\n", "completion": "the rest"}).encode(), b"", b"<|im_end|>"))
    seed("chat_template", "llama2-alpaca",
         join(LLAMA2.encode(), json.dumps({"instruction": "Add", "input": "1 and 2", "output": "3"}).encode(), b"<s>", b"</s>"))
    pref = {"prompt": [{"role": "user", "content": "Which?"}], "chosen": [{"role": "assistant", "content": "This"}],
            "rejected": [{"role": "assistant", "content": "That"}]}
    seed("chat_template", "tools-preference", join(TOOLS.encode(), json.dumps(pref).encode(), b"", b"</s>"))
    tools = {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "2+2"},
                          {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 2, "b": [2.5, None]}}}]}]}
    seed("chat_template", "tools-chat", join(TOOLS.encode(), json.dumps(tools).encode(), b"", b""))
    seed("chat_template", "plain-preference",
         join(b"", json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}).encode(), b"", b"</s>"))
    seed("chat_template", "loop", join(b"{% for i in range(3) %}{% for m in messages %}{{ m.content }}{% endfor %}{% endfor %}{% macro f(n) %}{{ n }}{% endmacro %}{{ f(1) }}",
                                       json.dumps(conv).encode()))


def logs():
    lines = testdata("fixtures/plot/runs/nano-lr1e-3/metrics.jsonl").split(b"\n")
    seed("metrics_log", "train-head", b"\n".join(lines[:12]) + b"\n")
    seed("metrics_log", "torn-tail", b"\n".join(lines[:4]) + b"\n" + lines[4][:40])
    seed("metrics_log", "odd-values", b'\xef\xbb\xbf{"step": 0, "loss": NaN, "lr": 1e-3}\r\n{"step": 1, "loss": 2.5, "val_loss": null, "kl": -0.5}\n\n'
         b'{"step": 1, "loss": 2.0, "reward": "x"}\n{"step": 2, "loss": 1e308, "grad_norm": 0}\n{"step": 3.5, "loss": 1}\n')
    seed("metrics_log", "rlhf", b'{"step": 1, "reward_mean": 0.1, "kl": 0.01, "tokens": 100}\n{"step": 2, "reward_mean": 0.3, "kl": 0.02, "tokens": 200}\n')


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    jsonl()
    shards()
    models()
    adapters()
    templates()
    logs()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)")
