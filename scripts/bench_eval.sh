#!/usr/bin/env bash
# Benchmarks wick `ppl` and `generate` against Hugging Face transformers (scripts/hf_eval.py) on
# the CPU, same model, same data, same thread count.
#
#   bash scripts/bench_eval.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Steps: build the release binaries (cargo build --release -p tokenize -p pack -p ppl -p generate),
# make sure the venv has torch + transformers (scripts/requirements-models.txt, installed into
# .venv when `import torch` fails), then, each made once and kept under bench-data/eval/:
#   - a model: BENCH_EVAL_MODEL, else model-small/: a seeded random-init LlamaForCausalLM (vocab
#     4096, hidden 384, intermediate 1536, 6 layers, 6 heads / 6 KV heads, 256 positions,
#     float32, 17.3M parameters; weights N(0, 1.5^2/fan_in), embeddings N(0, 1)) written with
#     save_pretrained, with the tokenizer below copied in;
#   - tokenizer/: `tokenize train --vocab-size 4096` on testdata/english.jsonl (for model-small);
#   - shards-<tokenizer hash>-<val fraction>/: testdata/english.jsonl tokenized with the model's
#     tokenizer.json and packed with --val-fraction BENCH_EVAL_VAL_FRACTION;
# and a prompts file: the first 8 words of BENCH_EVAL_PROMPTS lines spread over english.jsonl.
# Then, untimed, one sanity run of each wick tool, and for BENCH_EVAL_RUNS rounds, in an order that
# rotates every round, with BENCH_EVAL_THREADS threads each:
#   (a) ppl --model M --data S --seq-len 256 --batch-size 8 --threads 2     its own tokens_per_s
#       (reading the shards and scoring every batch) and steady_tokens_per_s (after its first
#       batch, which pays for the first touch of every buffer: the like of (b)'s warm-up)
#   (b) hf_eval.py --mode ppl (same settings)        tokens/s of the timed forward passes only
#   (c) generate --model M --max-new-tokens 128 --temperature 0 --ignore-eos --threads 2
#         < prompts > out        tokens/s = prompts * 128 / wall seconds of the whole command
#   (d) hf_eval.py --mode generate --max-new-tokens 128 --prefix bos (BOS before each prompt, as
#       wick generate does without --no-prefix): tokens/s of the model.generate calls only (after a
#       warm-up; the process's wall time, with Python start-up and model load, is shown too)
# Both ppl runs score each val shard in windows of seq-len + 1 tokens, stride seq-len, the last
# partial window included. wick generate's output lines carry the generated ids as "response_ids"
# (or "ids") and the prompt's as "prompt_ids"; hf_eval.py's as "ids" and "prompt_ids".
# Prints medians, the ratios wick/transformers, whether the two mean NLLs agree within
# BENCH_EVAL_NLL_TOL, and whether the greedy ids of the first prompt are identical.
#
# Environment:
#   BENCH_EVAL_RUNS=3           timed rounds (falls back to BENCH_RUNS, then 3)
#   BENCH_EVAL_THREADS=2        threads for both sides (--threads; torch.set_num_threads)
#   BENCH_EVAL_SEQ_LEN=256      ppl window length
#   BENCH_EVAL_BATCH=8          ppl batch size
#   BENCH_EVAL_MAX_TOKENS=      when set, --max-tokens N for both ppl runs
#   BENCH_EVAL_NEW_TOKENS=128   generated tokens per prompt
#   BENCH_EVAL_PROMPTS=8        number of prompts
#   BENCH_EVAL_VAL_FRACTION=0.1 val fraction of the eval shards (0.1 -> ~15k val tokens)
#   BENCH_EVAL_MODEL=DIR        benchmark this model folder (needs tokenizer.json in it). For the
#                               nano model that bench_train.sh's quality run writes (context 64):
#                               BENCH_EVAL_MODEL=bench-data/train/wick-quality BENCH_EVAL_SEQ_LEN=64
#                               BENCH_EVAL_BATCH=12 BENCH_EVAL_NEW_TOKENS=32
#   BENCH_EVAL_NLL_TOL=1e-3     largest |nll_wick - nll_transformers| that counts as agreement
#   BENCH_EVAL_HF_ONLY=1        run only the transformers side (no ppl/generate binaries needed)
#   BENCH_EVAL_PROFILE=1        after the rounds, one more ppl run each with the matrix products
#                               timed (WICK_GEMM_PROFILE=1; hf_eval.py --profile-mm): each side's
#                               product share, and the ratio wick could reach if nothing but its
#                               products cost time (0 skips it)
#   BENCH_NO_BUILD=1            use the existing target/release binaries, do not run cargo
#   BENCH_BIN_DIR=DIR           take the binaries from DIR (implies BENCH_NO_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_eval: error: $*" >&2; exit 1; }
say() { echo "bench_eval: $*" >&2; }
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }

RUNS=${BENCH_EVAL_RUNS:-${BENCH_RUNS:-3}}
THREADS=${BENCH_EVAL_THREADS:-2}
SEQ=${BENCH_EVAL_SEQ_LEN:-256}
BATCH=${BENCH_EVAL_BATCH:-8}
NEW=${BENCH_EVAL_NEW_TOKENS:-128}
NPROMPTS=${BENCH_EVAL_PROMPTS:-8}
VALFRAC=${BENCH_EVAL_VAL_FRACTION:-0.1}
NLL_TOL=${BENCH_EVAL_NLL_TOL:-1e-3}
HF_ONLY=${BENCH_EVAL_HF_ONLY:-0}
PROFILE=${BENCH_EVAL_PROFILE:-1}
posint BENCH_EVAL_RUNS "$RUNS"; posint BENCH_EVAL_THREADS "$THREADS"; posint BENCH_EVAL_SEQ_LEN "$SEQ"
posint BENCH_EVAL_BATCH "$BATCH"; posint BENCH_EVAL_NEW_TOKENS "$NEW"; posint BENCH_EVAL_PROMPTS "$NPROMPTS"
MAXTOK=()
if [ -n "${BENCH_EVAL_MAX_TOKENS:-}" ]; then
  posint BENCH_EVAL_MAX_TOKENS "$BENCH_EVAL_MAX_TOKENS"
  MAXTOK=(--max-tokens "$BENCH_EVAL_MAX_TOKENS")
fi
CORPUS=testdata/english.jsonl
BIN=${BENCH_BIN_DIR:-target/release}
TOK=$BIN/tokenize
PACK=$BIN/pack
PPL=$BIN/ppl
GEN=$BIN/generate
PY=.venv/bin/python
EVAL=bench-data/eval

# --- binaries --------------------------------------------------------------------------------
pkgs=(-p tokenize -p pack)
[ "$HF_ONLY" = 1 ] || pkgs+=(-p ppl -p generate)
if [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "cargo build --release ${pkgs[*]}"
  cargo build --release "${pkgs[@]}" \
    || die "cargo build --release ${pkgs[*]} failed (see above; BENCH_EVAL_HF_ONLY=1 runs the transformers side alone)"
fi
bins=("$TOK" "$PACK")
[ "$HF_ONLY" = 1 ] || bins+=("$PPL" "$GEN")
for b in "${bins[@]}"; do
  [ -x "$b" ] || die "$b not found; build it with: cargo build --release ${pkgs[*]}"
done

# --- python ----------------------------------------------------------------------------------
bash scripts/venv.sh || die "scripts/venv.sh failed"
if ! "$PY" -c 'import torch, transformers, safetensors' 2>/dev/null; then
  say "installing scripts/requirements-models.txt into .venv (torch is large)"
  "$PY" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-models.txt \
    || die "pip install -r scripts/requirements-models.txt failed"
fi

# --- model, tokenizer, shards, prompts (made once) ----------------------------------------------
mkdir -p "$EVAL"
if [ -n "${BENCH_EVAL_MODEL:-}" ]; then
  MODEL=$BENCH_EVAL_MODEL
else
  MODEL=$EVAL/model-small
  if [ ! -f "$EVAL/tokenizer/tokenizer.json" ]; then
    say "training a 4096-token tokenizer on $CORPUS -> $EVAL/tokenizer/"
    rm -rf "$EVAL/tokenizer.tmp"
    "$TOK" train --vocab-size 4096 -o "$EVAL/tokenizer.tmp/" "$CORPUS" || die "tokenize train failed"
    mv "$EVAL/tokenizer.tmp" "$EVAL/tokenizer"
  fi
  if [ ! -f "$MODEL/model.safetensors" ]; then
    say "creating a seeded random-init Llama model -> $MODEL/"
    rm -rf "$MODEL.tmp"
    "$PY" - "$MODEL.tmp" "$EVAL/tokenizer" <<'EOF' || die "creating the random model failed"
import json, math, os, shutil, sys
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

out, tok = sys.argv[1], sys.argv[2]
transformers.utils.logging.disable_progress_bar()
with open(os.path.join(tok, "tokenizer.json")) as f:
    vocab = json.load(f)["model"]["vocab"]
eos = 0  # `tokenize train` puts the first special token (<|endoftext|>, EOS and BOS) at id 0
assert max(vocab.values()) < 4096, "tokenizer has more than 4096 tokens"
torch.manual_seed(20250101)
cfg = LlamaConfig(vocab_size=4096, hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                  num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=256,
                  bos_token_id=eos, eos_token_id=eos, pad_token_id=None)
model = LlamaForCausalLM(cfg).to(torch.float32).eval()
# Re-draw every weight from a seeded generator, wider than transformers' init (std 0.02): its
# logits are nearly flat (top-2 gaps of 1e-4 on the greedy path, where float rounding could pick
# either) and greedy output repeats a few tokens; with these, gaps stay >~ 1e-3 and the greedy
# continuations vary, so comparing wick's greedy ids with transformers' means something.
g = torch.Generator().manual_seed(20250101)
with torch.no_grad():
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        elif "embed_tokens" in name:
            p.copy_(torch.randn(p.shape, generator=g))
        else:
            p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))
model.save_pretrained(out)
for name in ("tokenizer.json", "tokenizer_config.json"):
    if os.path.exists(os.path.join(tok, name)):
        shutil.copy(os.path.join(tok, name), os.path.join(out, name))
print(f"bench_eval: {sum(p.numel() for p in model.parameters())} parameters -> {out}", file=sys.stderr)
EOF
    rm -rf "$MODEL"
    mv "$MODEL.tmp" "$MODEL"
  fi
fi
[ -f "$MODEL/config.json" ] || die "$MODEL: not a model folder (no config.json)"
[ -f "$MODEL/tokenizer.json" ] || die "$MODEL: has no tokenizer.json (needed to make the eval shards and prompts)"
CTX=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("max_position_embeddings", 0))' "$MODEL/config.json")
if [ "$CTX" -gt 0 ] && [ "$SEQ" -gt "$CTX" ]; then
  die "$MODEL has a context of $CTX positions, below the ppl window (BENCH_EVAL_SEQ_LEN=$SEQ); set BENCH_EVAL_SEQ_LEN"
fi

TOKHASH=$(sha256sum "$MODEL/tokenizer.json" | cut -c1-12)
SHARDS=$EVAL/shards-$TOKHASH-$VALFRAC
if [ ! -f "$SHARDS/manifest.json" ]; then
  say "tokenize | pack $CORPUS with $MODEL's tokenizer -> $SHARDS/"
  rm -rf "$SHARDS"
  (set -o pipefail
   "$TOK" --tokenizer "$MODEL" -q "$CORPUS" \
     | "$PACK" --tokenizer "$MODEL" -q --val-fraction "$VALFRAC" -o "$SHARDS") \
    || die "tokenize | pack failed"
fi
VAL_TOKENS=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["splits"].get("val",{}).get("tokens",0))' "$SHARDS/manifest.json")
[ "$VAL_TOKENS" -gt "$SEQ" ] || die "$SHARDS has only $VAL_TOKENS val tokens; raise BENCH_EVAL_VAL_FRACTION"

PROMPTS=$EVAL/prompts-$NPROMPTS.jsonl
"$PY" - "$CORPUS" "$NPROMPTS" "$PROMPTS" <<'EOF' || die "making the prompts failed"
import json, sys
corpus, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [l for l in open(corpus, encoding="utf-8") if l.strip()]
assert len(lines) >= n, f"{corpus} has fewer than {n} lines"
with open(out, "w", encoding="utf-8") as f:
    for i in range(n):  # lines spread evenly over the file; first 8 words of each text
        words = json.loads(lines[i * len(lines) // n])["text"].split()
        f.write(json.dumps({"prompt": " ".join(words[:8])}) + "\n")
EOF

WORK=$(mktemp -d bench-data/eval-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/results.tsv   # kind <TAB> run <TAB> tokens_per_s <TAB> wall_seconds <TAB> peak_rss_kb <TAB> nll
: > "$RES"

source scripts/timing.sh

cores=$(nproc)
read -r load1 _ < /proc/loadavg
echo "== ppl / generate benchmark (CPU, $THREADS threads each) =="
echo "model:   $MODEL ($(du -sh "$MODEL/model.safetensors" 2>/dev/null | cut -f1 || echo '?') safetensors, context $CTX)"
echo "data:    $SHARDS (val: $VAL_TOKENS tokens), seq-len $SEQ, batch $BATCH${MAXTOK[*]:+, ${MAXTOK[*]}}"
echo "prompts: $PROMPTS ($NPROMPTS prompts x $NEW new tokens, greedy)"
echo "runs: $RUNS; cores: $cores; load avg: $load1; timer: $TIMER"
if awk "BEGIN{exit !($load1 > $cores * 0.5)}"; then
  echo "WARNING: load average $load1 on $cores cores: the machine is busy, numbers will be noisy"
fi
[ "$HF_ONLY" = 1 ] && echo "BENCH_EVAL_HF_ONLY=1: transformers side only"

# One JSON object from a tool's stdout (a whole-file object, else the last line that parses).
jget() {  # $1 = file, $2... = fields; prints them space-separated
  "$PY" - "$@" <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
try:
    obj = json.loads(text)
except ValueError:
    obj = None
    for line in reversed(text.splitlines()):
        try:
            obj = json.loads(line)
            break
        except ValueError:
            pass
if not isinstance(obj, dict):
    sys.exit(f"{sys.argv[1]}: no JSON object in the output")
missing = [k for k in sys.argv[2:] if k not in obj]
if missing:
    sys.exit(f"{sys.argv[1]}: the JSON object lacks {missing}: {text.strip()[:300]}")
print(" ".join(repr(float(obj[k])) for k in sys.argv[2:]))
EOF
}
# Checks a generate output: NPROMPTS lines, each with NEW generated ids ("ids" or "response_ids").
check_gen() {  # $1 = output JSONL
  "$PY" - "$1" "$NPROMPTS" "$NEW" <<'EOF'
import json, sys
path, n, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
if len(rows) != n:
    sys.exit(f"{path}: {len(rows)} output lines for {n} prompts")
bad = [i + 1 for i, r in enumerate(rows) if len(r.get("ids", r.get("response_ids", []))) != new]
if bad:
    sys.exit(f"{path}: prompts {bad} did not get exactly {new} generated ids")
EOF
}

# --- untimed sanity runs of the wick tools -------------------------------------------------------
if [ "$HF_ONLY" != 1 ]; then
  say "sanity run: ppl"
  "$PPL" --model "$MODEL" --data "$SHARDS" --seq-len "$SEQ" --batch-size "$BATCH" --threads "$THREADS" \
    "${MAXTOK[@]}" > "$WORK/ppl.json" 2> "$WORK/ppl.err" || { cat "$WORK/ppl.err" >&2; die "$PPL failed"; }
  jget "$WORK/ppl.json" tokens nll ppl tokens_per_s seconds > /dev/null \
    || die "$PPL did not print a JSON object with tokens, nll, ppl, tokens_per_s, seconds"
  say "sanity run: generate"
  "$GEN" --model "$MODEL" --max-new-tokens "$NEW" --temperature 0 --ignore-eos --threads "$THREADS" \
    < "$PROMPTS" > "$WORK/gen.jsonl" 2> "$WORK/gen.err" || { cat "$WORK/gen.err" >&2; die "$GEN failed"; }
  check_gen "$WORK/gen.jsonl" || die "$GEN output is not as expected"
fi

# --- the timed runs ------------------------------------------------------------------------------
run_wick_ppl() {  # $1 = run number
  local t=$WORK/t
  timed "$t" "$PPL" --model "$MODEL" --data "$SHARDS" --seq-len "$SEQ" --batch-size "$BATCH" \
    --threads "$THREADS" "${MAXTOK[@]}" > "$WORK/wick_ppl.json" 2> "$WORK/wick_ppl.err" \
    || { cat "$WORK/wick_ppl.err" >&2; die "wick ppl failed ($(head -n 1 "$t"))"; }
  read -r s kb < <(timing "$t")
  read -r tps nll tokens < <(jget "$WORK/wick_ppl.json" tokens_per_s nll tokens) || die "bad wick ppl output"
  # (Absent when everything fits one batch: then the whole rate stands in.)
  steady=$(jget "$WORK/wick_ppl.json" steady_tokens_per_s 2> /dev/null) || steady=$tps
  printf 'wick_ppl\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$tps" "$s" "$kb" "$nll" "$tokens" >> "$RES"
  printf 'wick_ppl_steady\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$steady" "$s" "$kb" "$nll" "$tokens" >> "$RES"
  printf '  run %s  wick ppl               %9.0f tokens/s  (after its first batch %.0f; wall %.2f s, %.0f MiB peak RSS)\n' \
    "$1" "$tps" "$steady" "$s" "$(awk "BEGIN{print $kb/1024}")"
}
run_hf_ppl() {
  local t=$WORK/t
  timed "$t" "$PY" scripts/hf_eval.py --model "$MODEL" --mode ppl --data "$SHARDS" --seq-len "$SEQ" \
    --batch-size "$BATCH" --threads "$THREADS" "${MAXTOK[@]}" > "$WORK/hf_ppl.json" \
    || die "hf_eval.py --mode ppl failed ($(head -n 1 "$t"))"
  read -r s kb < <(timing "$t")
  read -r tps nll tokens < <(jget "$WORK/hf_ppl.json" tokens_per_s nll tokens) || die "bad hf_eval.py output"
  printf 'hf_ppl\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$tps" "$s" "$kb" "$nll" "$tokens" >> "$RES"
  printf '  run %s  transformers ppl       %9.0f tokens/s  (wall %.2f s, %.0f MiB peak RSS)\n' \
    "$1" "$tps" "$s" "$(awk "BEGIN{print $kb/1024}")"
}
run_wick_gen() {
  local t=$WORK/t
  timed "$t" "$GEN" --model "$MODEL" --max-new-tokens "$NEW" --temperature 0 --ignore-eos \
    --threads "$THREADS" < "$PROMPTS" > "$WORK/wick_gen.jsonl" 2> "$WORK/wick_gen.err" \
    || { cat "$WORK/wick_gen.err" >&2; die "wick generate failed ($(head -n 1 "$t"))"; }
  check_gen "$WORK/wick_gen.jsonl" || die "wick generate output is not as expected"
  read -r s kb < <(timing "$t")
  local tps
  tps=$(awk "BEGIN{print $NPROMPTS * $NEW / $s}")
  printf 'wick_gen\t%s\t%s\t%s\t%s\t0\t%s\n' "$1" "$tps" "$s" "$kb" "$((NPROMPTS * NEW))" >> "$RES"
  printf '  run %s  wick generate          %9.1f tokens/s  (wall %.2f s, %.0f MiB peak RSS)\n' \
    "$1" "$tps" "$s" "$(awk "BEGIN{print $kb/1024}")"
}
run_hf_gen() {
  local t=$WORK/t
  timed "$t" "$PY" scripts/hf_eval.py --model "$MODEL" --mode generate --prompts "$PROMPTS" \
    --max-new-tokens "$NEW" --prefix bos --threads "$THREADS" --out "$WORK/hf_gen.jsonl" > "$WORK/hf_gen.json" \
    || die "hf_eval.py --mode generate failed ($(head -n 1 "$t"))"
  check_gen "$WORK/hf_gen.jsonl" || die "hf_eval.py generate output is not as expected"
  read -r s kb < <(timing "$t")
  read -r tps tokens < <(jget "$WORK/hf_gen.json" tokens_per_s new_tokens) || die "bad hf_eval.py output"
  printf 'hf_gen\t%s\t%s\t%s\t%s\t0\t%s\n' "$1" "$tps" "$s" "$kb" "$tokens" >> "$RES"
  printf '  run %s  transformers generate  %9.1f tokens/s  (generate calls only; wall %.2f s = %.1f tokens/s, %.0f MiB peak RSS)\n' \
    "$1" "$tps" "$s" "$(awk "BEGIN{print $NPROMPTS * $NEW / $s}")" "$(awk "BEGIN{print $kb/1024}")"
}

if [ "$HF_ONLY" = 1 ]; then
  order=(run_hf_ppl run_hf_gen)
else
  order=(run_wick_ppl run_hf_ppl run_wick_gen run_hf_gen)
fi
for ((r = 1; r <= RUNS; r++)); do
  for ((k = 0; k < ${#order[@]}; k++)); do
    "${order[(r - 1 + k) % ${#order[@]}]}" "$r"
  done
done

# --- summary ---------------------------------------------------------------------------------
[ -f "$WORK/wick_gen.jsonl" ] || : > "$WORK/wick_gen.jsonl"
"$PY" - "$RES" "$WORK/wick_gen.jsonl" "$WORK/hf_gen.jsonl" "$NLL_TOL" "$NPROMPTS" "$NEW" <<'EOF'
import json, statistics, sys
res, wick_out, hf_out, tol, nprompts, new = sys.argv[1:7]
tol, nprompts, new = float(tol), int(nprompts), int(new)
rows = {}
for line in open(res):
    kind, run, tps, s, kb, nll, tokens = line.rstrip("\n").split("\t")
    rows.setdefault(kind, []).append((float(tps), float(s), int(kb), float(nll), int(float(tokens))))
med = lambda kind, i=0: statistics.median(r[i] for r in rows[kind])
mib = lambda kind: max(r[2] for r in rows[kind]) / 1024
hf_only = "wick_ppl" not in rows

print()
print(f"== ppl / generate results: medians of {len(rows['hf_ppl'])} runs ==")
fmt = "{:<24} {:10.1f} tokens/s  peak RSS {:6.0f} MiB"
if not hf_only:
    print(fmt.format("wick ppl", med("wick_ppl"), mib("wick_ppl")))
    print(fmt.format("  after its first batch", med("wick_ppl_steady"), mib("wick_ppl")))
print(fmt.format("transformers ppl", med("hf_ppl"), mib("hf_ppl")))
if not hf_only:
    print(fmt.format("wick generate", med("wick_gen"), mib("wick_gen"))
          + f"  (wall of the whole command, model load included)")
print(fmt.format("transformers generate", med("hf_gen"), mib("hf_gen"))
      + f"  (generate calls only; whole process: {nprompts * new / med('hf_gen', 1):.1f} tokens/s)")
print()
hf_nll, hf_tokens = rows["hf_ppl"][-1][3], rows["hf_ppl"][-1][4]
print(f"transformers: {hf_tokens} tokens scored, nll {hf_nll:.6f}")
if hf_only:
    sys.exit(0)

w_nll, w_tokens = rows["wick_ppl"][-1][3], rows["wick_ppl"][-1][4]
print(f"wick:         {w_tokens} tokens scored, nll {w_nll:.6f}")
if w_tokens != hf_tokens:
    print(f"WARNING: wick scored {w_tokens} tokens, transformers {hf_tokens}: the windows differ "
          f"(hf_eval.py scores each val shard in windows of seq-len + 1, stride seq-len, the last "
          f"partial window included; its --drop-partial / --concat change that)")
diff = abs(w_nll - hf_nll)
if diff <= tol:
    print(f"nll agree: |wick - transformers| = {diff:.2e} <= {tol:g}")
else:
    print(f"WARNING: nll DIFFER: |wick - transformers| = {diff:.2e} > {tol:g}")

wick = [json.loads(l) for l in open(wick_out, encoding="utf-8") if l.strip()]
hf = [json.loads(l) for l in open(hf_out, encoding="utf-8") if l.strip()]
for r in wick:
    r.setdefault("ids", r.get("response_ids"))
if "prompt_ids" in wick[0] and wick[0]["prompt_ids"] != hf[0]["prompt_ids"]:
    print(f"WARNING: the first prompt's ids differ: wick {wick[0]['prompt_ids'][:12]}..., "
          f"transformers {hf[0]['prompt_ids'][:12]}... (prefix or tokenization), so the "
          f"continuations need not match")
def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b)))
d = first_diff(wick[0]["ids"], hf[0]["ids"])
if d is None:
    print(f"greedy ids of the first prompt: identical ({len(hf[0]['ids'])} tokens)")
else:
    print(f"WARNING: greedy ids of the first prompt DIFFER from position {d} "
          f"(wick {wick[0]['ids'][d:d + 5]}..., transformers {hf[0]['ids'][d:d + 5]}...)")
same = sum(first_diff(a["ids"], b["ids"]) is None for a, b in zip(wick, hf))
print(f"  all prompts: {same} of {len(hf)} identical")
print()
print(f"ppl: wick vs transformers {med('wick_ppl') / med('hf_ppl'):.2f}x tokens/s (every batch; "
      f"{med('wick_ppl_steady') / med('hf_ppl'):.2f}x after wick's first batch, as transformers is "
      f"timed after an untimed warm-up batch)")
print(f"generate: wick vs transformers {med('wick_gen') / med('hf_gen'):.2f}x tokens/s "
      f"(wick's wall time incl. load vs transformers' generate calls; "
      f"{med('hf_gen', 1) / med('wick_gen', 1):.2f}x process vs process)")
EOF
if [ "$HF_ONLY" != 1 ] && [ -s "$WORK/wick_gen.err" ]; then
  echo "  (wick generate's own stderr summary, last run: $(tail -n 1 "$WORK/wick_gen.err"))"
fi

# --- where ppl's time goes -----------------------------------------------------------------------
# One more run of each ppl with its matrix products timed: wick with WICK_GEMM_PROFILE=1 (its
# stderr report), transformers under torch.profiler (hf_eval.py --profile-mm). A product share
# is a ratio within one run, steadier than either run's time on this noisy machine. wick's share
# bounds what work outside the products can win: with all of it gone, wick's ppl would be the
# median ratio / wick's share times transformers'.
if [ "$HF_ONLY" != 1 ] && [ "$PROFILE" = 1 ]; then
  WICK_GEMM_PROFILE=1 "$PPL" --model "$MODEL" --data "$SHARDS" --seq-len "$SEQ" --batch-size "$BATCH" \
    --threads "$THREADS" "${MAXTOK[@]}" > "$WORK/wick_ppl_prof.json" 2> "$WORK/wick_ppl_prof.err" \
    || { cat "$WORK/wick_ppl_prof.err" >&2; die "wick ppl (profiled) failed"; }
  "$PY" scripts/hf_eval.py --model "$MODEL" --mode ppl --data "$SHARDS" --seq-len "$SEQ" \
    --batch-size "$BATCH" --threads "$THREADS" "${MAXTOK[@]}" --profile-mm > "$WORK/hf_ppl_prof.json" \
    2> "$WORK/hf_ppl_prof.err" || { cat "$WORK/hf_ppl_prof.err" >&2; die "hf_eval.py --profile-mm failed"; }
  "$PY" - "$WORK/wick_ppl_prof.json" "$WORK/wick_ppl_prof.err" "$WORK/hf_ppl_prof.json" "$THREADS" \
    "$RES" <<'EOF'
import json, re, statistics, sys
wick = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
m = re.search(r"\(WICK_GEMM_PROFILE\): ([0-9.]+) s split over the threads and ([0-9.]+) s on single",
              open(sys.argv[2]).read())
if not m:
    sys.exit("bench_eval: error: wick ppl printed no WICK_GEMM_PROFILE report")
# Single-threaded products (attention's) run side by side: their summed time over the threads.
w_mm = float(m.group(1)) + float(m.group(2)) / int(sys.argv[4])
w_share = w_mm / wick["seconds"]
hf = json.load(open(sys.argv[3]))
tps = {}
for line in open(sys.argv[5]):
    f = line.rstrip("\n").split("\t")
    tps.setdefault(f[0], []).append(float(f[2]))
ratio = statistics.median(tps["wick_ppl"]) / statistics.median(tps["hf_ppl"])
print()
print("ppl, where the time goes (one more run each, products timed):")
print(f"  wick:         matrix products {w_mm:.2f} s of {wick['seconds']:.2f} s ({100 * w_share:.0f}%)")
print(f"  transformers: matrix products {hf['mm_seconds']:.2f} s of {hf['profiled_seconds']:.2f} s "
      f"({100 * hf['mm_share']:.0f}%)")
print(f"  with everything but wick's products free: at most {ratio / w_share:.2f}x "
      f"(the median {ratio:.2f}x / wick's share)")
EOF
fi
