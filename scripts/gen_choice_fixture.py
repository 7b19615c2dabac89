#!/usr/bin/env python3
"""Builds testdata/eval/choice/: a tiny model folder with a character-level tokenizer, 40
multiple-choice records from the Sonnets and the plays' verse (testdata/english.jsonl), and
the log-likelihood of every ending computed with transformers' LlamaForCausalLM, as an
independent reference for `eval --task choice`.

Run once with the project's venv (torch, transformers, tokenizers, safetensors); the output is
committed and the Rust tests need no Python:

    .venv/bin/python scripts/gen_choice_fixture.py

Scoring mirrors wick's convention (crates/eval/src/choice.rs), which is lm-evaluation-harness's
`loglikelihood` with the model's BOS put before every document:

* continuation = delimiter (" ") + ending;
* `_encode_pair`: trailing whitespace of the context moves to the front of the continuation;
  whole = encode(context + continuation), ctx = encode(context), both without special tokens;
  the continuation's tokens are whole[len(ctx):];
* model input = [bos] + ctx + continuation tokens; loglik = the sum, in float64, of the float32
  log_softmax of the logits at the position before each continuation token;
* pred = argmax of the logliks (first on ties), pred_norm = argmax of loglik / len(ending)
  (characters, without the delimiter); acc / acc_norm = the fraction of labelled records whose
  pred / pred_norm equals the label.
"""

import json
import random
import shutil
from pathlib import Path

import torch
import transformers
import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
SRC_MODEL = ROOT / "testdata/models/llama-gqa"
OUT = ROOT / "testdata/eval/choice"
MODEL = OUT / "model"

SPECIALS = ["<unk>", "<s>", "</s>"]
CHARS = (
    [" ", "\n"]
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + list("0123456789")
    + list(",.;:!?'-")
)
DELIMITER = " "
SEED = 20250117
N_RECORDS = 40
MAX_IDS = 112  # BOS + context + continuation, well under max_position_embeddings (128)


def build_tokenizer() -> Tokenizer:
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    assert len(vocab) <= 64, len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # Every character is its own pre-token ([\s\S] also matches the newline, which . does not).
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    return tok


def clean(line: str) -> str:
    """Lowercased, only the tokenizer's characters, runs of spaces collapsed."""
    kept = "".join(c for c in line.lower() if c in CHARS and c != "\n")
    return " ".join(kept.split())


def is_speaker(line: str) -> bool:
    """A play's speaker line: "FIRST WITCH." (Macbeth, The Tempest) or "Laer." (Hamlet)."""
    words = line.strip().removesuffix(".").split()
    return (
        line.strip().endswith(".")
        and 0 < len(words) <= 3
        and all(w.isalpha() and w[0].isupper() for w in words)
    )


def passages() -> list[tuple[str, list[str]]]:
    """Runs of consecutive verse lines: each sonnet, and each speech of the plays (the lines
    after the speaker's name, up to a stage direction or a blank line)."""
    out = []
    for raw in (ROOT / "testdata/english.jsonl").read_text().splitlines():
        rec = json.loads(raw)
        if rec["source"] == "hamlet_gut_f":
            continue  # First Folio spelling (vnfold, selfe): keep to one spelling
        for block in rec["text"].split("\n\n"):
            lines = block.split("\n")
            if rec["source"] != "sonnets_gut":
                if not is_speaker(lines[0]):
                    continue
                lines = lines[1:]
            run = []
            for l in lines + ["["]:
                if "[" in l or "]" in l or not clean(l):
                    if len(run) >= 2:
                        out.append((rec["id"], run))
                    run = []
                else:
                    run.append(clean(l))
    return out


def make_records() -> list[dict]:
    rng = random.Random(SEED)
    runs = passages()
    all_lines = sorted({l for _, r in runs for l in r if len(l) >= 12})
    records = []
    used = set()
    for k in range(N_RECORDS):
        # A sonnet on one record of four (their lines are long: one context line), else a speech.
        sonnet = k % 4 == 1
        two = k % 3 != 2 and not sonnet  # two context lines on most others
        # How two lines join and how the context ends: with a trailing space on some
        # records, two spaces or a newline on a few, nothing on the rest.
        joiner = "\n" if k % 4 == 0 else " "
        tail = "" if k % 5 in (0, 2) else (" " if k % 5 != 4 else ("\n" if k % 10 == 9 else "  "))
        n = 2 if two else 1

        def fits(run: list[str], s: int) -> bool:
            """Context lines s..s+n and the next line fit, with room for the distractors."""
            if any(len(l) < 12 for l in run[s : s + n + 1]):
                return False
            size = len(joiner.join(run[s : s + n]) + tail) + len(run[s + n])
            return 1 + size + 1 <= MAX_IDS - 12

        while True:
            ri = rng.randrange(len(runs))
            doc, run = runs[ri]
            if doc.startswith("sonnets/") != sonnet:
                continue
            starts = [s for s in range(len(run) - n) if fits(run, s) and (ri, s) not in used]
            if starts:
                break
        start = rng.choice(starts)
        used.add((ri, start))
        true = run[start + n]
        context = joiner.join(run[start : start + n]) + tail
        # BOS + context + delimiter + ending (moved whitespace is already in the context).
        room = MAX_IDS - 1 - len(context) - 1
        others = set()
        while len(others) < 3:
            cand = rng.choice(all_lines)
            if cand != true and cand not in run and len(cand) <= room:
                others.add(cand)
        endings = sorted(others)
        rng.shuffle(endings)
        label = rng.randrange(4)
        endings.insert(label, true)
        rec = {
            "id": f"{k}:{doc}",
            "context": context,
            "endings": endings,
            "label": str(label) if k % 8 == 3 else label,
        }
        records.append(rec)
    return records


def encode(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def encode_pair(tok: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's TemplateLM._encode_pair."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(tok, context + continuation)
    ctx = encode(tok, context)
    return ctx, whole[len(ctx) :]


def argmax(xs: list[float]) -> int:
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def main() -> None:
    MODEL.mkdir(parents=True, exist_ok=True)
    for f in ["config.json", "generation_config.json", "model.safetensors"]:
        shutil.copyfile(SRC_MODEL / f, MODEL / f)
    tok = build_tokenizer()
    tok.save(str(MODEL / "tokenizer.json"))
    (MODEL / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": 128,
                "tokenizer_class": "PreTrainedTokenizerFast",
            },
            indent=2,
        )
        + "\n"
    )
    # Read back what was written, as a user of the folder would.
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    assert tok.token_to_id("<s>") == 1 and tok.token_to_id("</s>") == 2
    assert encode(tok, "a b\n") == [tok.token_to_id(c) for c in "a b\n"]

    config = json.loads((MODEL / "config.json").read_text())
    bos = config["bos_token_id"]
    assert bos == 1 and tok.get_vocab_size(with_added_tokens=True) <= config["vocab_size"]

    model = LlamaForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
    model.eval()

    records = make_records()
    out_records = []
    right = right_norm = labelled = 0
    max_ids = 0
    for rec in records:
        lls, cont_tokens = [], []
        for e in rec["endings"]:
            for c in rec["context"] + e:
                assert tok.token_to_id(c) is not None, repr(c)
            ctx, cont = encode_pair(tok, rec["context"], DELIMITER + e)
            assert cont, rec
            ids = [bos] + ctx + cont
            max_ids = max(max_ids, len(ids))
            assert len(ids) <= MAX_IDS, (len(ids), rec)
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            n = len(cont)
            # The token at position p is predicted by the logits at p - 1.
            picked = [logp[len(ids) - n - 1 + j, cont[j]].item() for j in range(n)]
            lls.append(float(sum(float(x) for x in picked)))
            cont_tokens.append(n)
        pred = argmax(lls)
        pred_norm = argmax([l / max(len(e), 1) for l, e in zip(lls, rec["endings"])])
        label = rec.get("label")
        label = int(label) if label is not None else None
        if label is not None:
            labelled += 1
            right += pred == label
            right_norm += pred_norm == label
        out_records.append(
            {
                "id": rec["id"],
                "logliks": lls,
                "continuation_tokens": cont_tokens,
                "pred": pred,
                "pred_norm": pred_norm,
                "label": label,
            }
        )

    with open(OUT / "choice.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    expected = {
        "generator": "scripts/gen_choice_fixture.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "delimiter": DELIMITER,
        "bos_id": bos,
        "records": out_records,
        "labelled": labelled,
        "acc": right / labelled,
        "acc_norm": right_norm / labelled,
        "max_input_ids": max_ids,
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(
        f"{len(records)} records, acc {expected['acc']:.3f}, acc_norm {expected['acc_norm']:.3f}, "
        f"longest input {max_ids} ids"
    )


if __name__ == "__main__":
    main()
