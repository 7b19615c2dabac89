#!/usr/bin/env python3
"""Writes testdata/fixtures/gpt2_ids.jsonl: reference GPT-2 token ids from Hugging Face `tokenizers`.

Each line is {"name": label, "text": str, "ids": [int, ...]} where
ids = Tokenizer.from_file("testdata/tokenizers/gpt2/tokenizer.json").encode(text, add_special_tokens=False).ids

The texts are hand-written edge cases (whitespace, Unicode, emoji, numbers, contractions, code,
the literal "<|endoftext|>") plus a deterministic sample (fixed strides, no randomness) of
testdata/english.jsonl and testdata/chinese.jsonl: whole short docs, the first 1500 characters of
long docs, and single lines.

This script was run once, from the repository root, with tokenizers==0.23.3 (see
scripts/requirements.txt); its output is committed and the Rust tests need no Python.
  .venv/bin/python scripts/gen_gpt2_fixture.py
"""
import json
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

TOKENIZER = Path("testdata/tokenizers/gpt2/tokenizer.json")
OUT = Path("testdata/fixtures/gpt2_ids.jsonl")
MAX_CHARS = 1500  # long documents are cut to their first MAX_CHARS characters

EDGE_CASES = [
    # whitespace
    ("empty", ""),
    ("space", " "),
    ("two_spaces", "  "),
    ("spaces_inside", "a    b"),
    ("leading_spaces", "   leading"),
    ("trailing_spaces", "trailing   "),
    ("tabs", "\t\t"),
    ("newlines", "\n\n\n"),
    ("space_newline_mix", "a \n  b"),
    ("mixed_whitespace", " \t\n \r\n\t x \t y\n"),
    ("crlf", "line one\r\nline two\r\n"),
    ("double_space_words", "Hello  world,  how   are you?"),
    ("space_run_50", "x" + " " * 50 + "y"),
    ("nbsp", "100\u00a0km and\u00a0more"),
    ("ideographic_space", "中文\u3000空格\u3000test"),
    ("zero_width", "zero\u200bwidth\u200cjoin\u200dend\ufeffbom"),
    ("nul_and_controls", "a\x00b\x01c\x7fd"),
    # Latin, combining, other scripts
    ("accented", "café naïve Zürich façade Ångström señor"),
    ("combining_acute", "e\u0301 cafe\u0301 A\u030a"),
    ("greek", "Ἐν ἀρχῇ ἦν ὁ λόγος. Καλημέρα κόσμε!"),
    ("cyrillic", "Привет, мир! Съешь же ещё этих мягких французских булок."),
    ("arabic", "مرحبا بالعالم، كيف حالك؟"),
    ("hebrew", "שלום עולם"),
    ("hindi", "नमस्ते दुनिया, आप कैसे हैं?"),
    ("thai", "สวัสดีชาวโลก"),
    ("korean", "안녕하세요 세계"),
    ("japanese", "こんにちは、世界！カタカナとひらがな。"),
    ("cjk_ascii_mix", "GPT-2模型在2019年发布"),
    ("fullwidth_punct", "你好，世界！（测试）「引号」：；？…—"),
    ("fullwidth_ascii", "ＡＢＣ１２３ｘｙｚ"),
    # emoji
    ("emoji_simple", "I ❤️ Rust 🦀🔥😀"),
    ("emoji_zwj_family", "family: 👩‍👩‍👧 and 👨‍👩‍👧‍👦"),
    ("emoji_flags", "flags 🇨🇳🇺🇸🇯🇵 🏳️‍🌈"),
    ("emoji_skin_tone", "👍🏽 👋🏿 🧑🏻‍💻"),
    ("emoji_keycap", "1️⃣ #️⃣"),
    # numbers and symbols
    ("pi", "3.14159"),
    ("million", "1,000,000"),
    ("date", "2024-05-20"),
    ("long_number", "12345678901234567890123456789"),
    ("other_digits", "٣٤٥ ½ x² Ⅻ ①"),
    ("math_symbols", "∑ ∫ √2 ≤ ≥ ≠ ∞ ±1e-9"),
    ("currency", "$5.99 €10 £3 ¥100"),
    # contractions and quotes
    ("contractions", "I'm you're they'll it's we've he'd don't"),
    ("contractions_upper", "I'M YOU'RE THEY'LL IT'S"),
    ("curly_quotes", "\u201cHello,\u201d she said\u2014\u2018it\u2019s fine\u2019."),
    ("punct_runs", "Wait!!! Really??? ... --- ***"),
    # code and URLs
    ("url", "See https://github.com/karpathy/llm.c/blob/master/README.md?x=1&y=2#intro"),
    ("email", "mail me: first.last+tag@example.co.uk"),
    ("python", "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n"),
    ("rust", "fn main() {\n\tlet v: Vec<u32> = (0..10).collect();\n\tprintln!(\"{v:?}\");\n}\n"),
    ("json", '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}'),
    ("html", "<div class=\"x\">&amp; &lt;tag&gt;</div>"),
    # special-token text
    ("eot_in_sentence", "The end.<|endoftext|> A new beginning."),
    ("eot_spaced", "before <|endoftext|> after"),
    ("eot_twice", "<|endoftext|>\n<|endoftext|>"),
    ("eot_partial", "<|endoftext| and <|endoftext"),
    # long tokens
    ("a_200", "a" * 200),
    ("word_repeat", "buffalo " * 20),
]


def lines_of(text):
    return [line for line in text.split("\n") if line.strip()]


def corpus_samples(path, tag, doc_stride, line_stride):
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    out = []
    for d in docs[::doc_stride]:
        text = d["text"]
        if len(text) <= MAX_CHARS:
            out.append((f"{tag}/{d['id']}", text))
        else:
            out.append((f"{tag}/{d['id']}[:{MAX_CHARS}]", text[:MAX_CHARS]))
    for d in docs[line_stride // 2 :: line_stride]:
        lines = lines_of(d["text"])
        k = len(lines) // 2
        out.append((f"{tag}/{d['id']}#line{k}", lines[k]))
    return out


def main():
    tok = Tokenizer.from_file(str(TOKENIZER))
    samples = list(EDGE_CASES)
    samples += corpus_samples(Path("testdata/english.jsonl"), "en", doc_stride=8, line_stride=11)
    samples += corpus_samples(Path("testdata/chinese.jsonl"), "zh", doc_stride=24, line_stride=43)
    names = [n for n, _ in samples]
    assert len(names) == len(set(names)), "duplicate names"

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="\n") as f:
        for name, text in samples:
            ids = tok.encode(text, add_special_tokens=False).ids
            f.write(json.dumps({"name": name, "text": text, "ids": ids}, ensure_ascii=False) + "\n")
    print(f"tokenizers {tokenizers.__version__}: wrote {len(samples)} records to {OUT} "
          f"({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
