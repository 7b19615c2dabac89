#!/usr/bin/env python3
"""Builds testdata/chat/: two tokenizer folders with chat templates, and the prompt token ids
that transformers' `apply_chat_template(messages, add_generation_prompt=True)` gives for the
records of testdata/chat/records.jsonl, as the independent reference for the prompts `generate`
renders from `{messages}` (and Alpaca) records.

Run once with a venv holding transformers and tokenizers (torch is not needed); the output is
committed and the Rust tests need no Python:

    .venv/bin/pip install tokenizers==0.23.3 transformers jinja2
    .venv/bin/python scripts/gen_chat_prompt_fixture.py

Both folders start from testdata/tokenizers/shakespeare-512 (a 512-token byte-level BPE,
`<|endoftext|>` = 0) with a few special tokens added after it:

* `qwen2/`: `<|im_start|>` 512, `<|im_end|>` 513, a Qwen2.5-style ChatML template (a default
  system prompt when the conversation has none), EOS `<|endoftext|>` as a base model's
  tokenizer names it, and a `generation_config.json` whose `eos_token_id` is the list
  [513, 0], as Qwen2-Instruct's is [<|im_end|>, <|endoftext|>].
* `llama3/`: `<|begin_of_text|>` 512, `<|start_header_id|>` 513, `<|end_header_id|>` 514,
  `<|eot_id|>` 515, Meta-Llama-3-Instruct's template (BOS from `bos_token`, each message's
  content `trim`med), EOS `<|endoftext|>`, and no generation_config.json: only the template
  says that a turn ends at `<|eot_id|>`.

expected.json holds, per folder and record: `text` (`apply_chat_template(..., tokenize=False)`)
and `ids` (`tokenize=True`, which encodes without adding special tokens; checked equal to
`tokenizer(text, add_special_tokens=False)`), and per folder `generation_eos` (transformers'
`GenerationConfig.from_pretrained(folder).eos_token_id`, null without generation_config.json)
and `tokenizer_eos` (`tokenizer.eos_token_id`). An Alpaca record `{instruction, input}` is
rendered as wick renders it with a chat template, one user message
`instruction + "\\n\\n" + input`, through transformers.
"""

import json
import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Tokenizer  # noqa: E402
from transformers import AutoTokenizer, GenerationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "testdata/tokenizers/shakespeare-512"
OUT = ROOT / "testdata/chat"

QWEN25 = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
'''

# Meta-Llama-3-8B-Instruct's chat_template.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

FOLDERS = {
    "qwen2": {
        "added": ["<|im_start|>", "<|im_end|>"],
        "template": QWEN25,
        "bos": None,
        "generation_eos": [513, 0],
    },
    "llama3": {
        "added": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "template": LLAMA3,
        "bos": "<|begin_of_text|>",
        "generation_eos": None,
    },
}

RECORDS = [
    {"id": "one-turn", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
    {
        "id": "system",
        "messages": [
            {"role": "system", "content": "You are a poet."},
            {"role": "user", "content": "Write a line about the sea."},
        ],
    },
    {
        "id": "multi-turn",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ],
    },
    {"id": "unicode-and-spaces", "messages": [{"role": "user", "content": "  caf\u00e9, \u4e2d\u6587 \u2014 \u201cquoted\u201d\n  "}]},
    {"id": "alpaca", "instruction": "Add the numbers.", "input": "1+1"},
]


def messages_of(rec):
    if "messages" in rec:
        return rec["messages"]
    return [{"role": "user", "content": rec["instruction"] + "\n\n" + rec["input"]}]


def build(name, spec):
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tok = Tokenizer.from_file(str(SRC / "tokenizer.json"))
    base = tok.get_vocab_size(with_added_tokens=True)
    assert base == 512, base
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec["added"]])
    for i, t in enumerate(spec["added"]):
        assert tok.token_to_id(t) == base + i, t
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "model_max_length": 1024,
        "chat_template": spec["template"],
    }
    if spec["bos"]:
        config["bos_token"] = spec["bos"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    if spec["generation_eos"] is not None:
        gen = {"eos_token_id": spec["generation_eos"], "transformers_version": transformers.__version__}
        (folder / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    hf = AutoTokenizer.from_pretrained(str(folder))
    out = {"texts": [], "ids": []}
    for rec in RECORDS:
        msgs = messages_of(rec)
        text = hf.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ids = hf.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        ids = [int(i) for i in ids]
        assert ids == hf(text, add_special_tokens=False)["input_ids"], rec["id"]
        out["texts"].append(text)
        out["ids"].append(ids)
    try:
        out["generation_eos"] = GenerationConfig.from_pretrained(str(folder)).eos_token_id
    except OSError:
        out["generation_eos"] = None
    out["tokenizer_eos"] = hf.eos_token_id
    out["added_tokens"] = {t: hf.convert_tokens_to_ids(t) for t in spec["added"]}
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "records.jsonl", "w") as f:
        for rec in RECORDS:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    expected = {
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "records": [r["id"] for r in RECORDS],
    }
    for name, spec in FOLDERS.items():
        expected[name] = build(name, spec)
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    for name in FOLDERS:
        print(name, [len(i) for i in expected[name]["ids"]], expected[name]["generation_eos"])


if __name__ == "__main__":
    main()
