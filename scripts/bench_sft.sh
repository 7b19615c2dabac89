#!/usr/bin/env bash
# Benchmarks wick `train --task sft` (LoRA and full fine-tuning) against PyTorch + transformers +
# PEFT (scripts/torch_sft.py) on the CPU: time per optimizer step and peak memory.
#
#   bash scripts/bench_sft.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Takes about 3 minutes on 2 cores with the defaults; for a quick look: BENCH_RUNS=1.
#
# Steps:
#   1. Build the release binaries (tokenize, pack, train); make sure .venv has torch, transformers
#      and peft (installed from scripts/requirements-models.txt when missing: large, the PyPI
#      torch wheel brings gigabytes of CUDA libraries).
#   2. Once, under bench-data/sft/ (rebuilt only when an input changes):
#        tok/     a 4096-token BPE tokenizer trained by wick on testdata/english.jsonl and
#                 testdata/chinese.jsonl (the SFT records are English and Chinese)
#        shards/  testdata/sft/train.jsonl ({"id","prompt","completion"}) through
#                 `tokenize --tokenizer tok/` (prompt, then completion + EOS with loss mask 1)
#                 and `pack --val-fraction 0.1`: .bin + .docs + .mask shards
#        base/    the nano preset (scripts/presets/nano.json, vocab from the shards) initialised by
#                 transformers and saved as a Hugging Face folder with the tokenizer
#                 (torch_sft.py --mode init): step time does not depend on the weights' values, so
#                 no pretraining run is needed.
#   3. Check (once): torch_sft.py --mode check runs packed rows with restarting position_ids and
#      compares their logits with each example run alone; the benchmark stops if transformers does
#      not turn the packed rows into block-diagonal causal attention.
#   4. Speed, BENCH_RUNS rounds, for each method (LoRA, full), the two tools alternating which goes
#      first, each run timed for its peak RSS (GNU time or a Python fallback, scripts/timing.sh):
#        wick:  train --task sft --method M --model base/ --data shards/ --batch-size 12 --seq-len 64
#               --max-steps 30 --eval-interval 0 --threads 2 --quiet -o DIR
#               ms/step = median of "step_ms" in DIR/metrics.jsonl, the first 5 steps left out
#        torch: torch_sft.py --mode speed --method M (same base, shards, B, T, steps, threads):
#               LoRA via peft.get_peft_model(LoraConfig(r 8, alpha 16, dropout 0, q/k/v/o_proj)),
#               full = every weight; the median step time of the same steps
#      Both do the same work: each epoch the train documents are shuffled and packed next-fit into
#      rows of T+1 tokens, attention is block-diagonal causal, the loss is the mean cross-entropy
#      over the masked (response) targets of the same example; AdamW betas 0.9/0.95, wd 0.1, clip
#      1.0. Prints, per method, the median over rounds for each tool, wick/torch (below 1 = wick
#      faster) and the median peak RSS; then LoRA / full for each tool (time and memory).
#
# Outputs stay in bench-data/sft/: tok/, shards/, base/, wick-lora/ and wick-full/ (the last
# speed run of each method).
#
# Environment:
#   BENCH_RUNS=3                 speed rounds
#   BENCH_SFT_METHODS="lora full"  methods to time
#   BENCH_SFT_STEPS=30           steps per speed run (the first 5 are discarded)
#   BENCH_SFT_BATCH=12           batch size (rows per step)
#   BENCH_SFT_SEQ=64             sequence length (rows hold T+1 tokens)
#   BENCH_THREADS=2              --threads for both tools
#   BENCH_TORCH_ATTN=sdpa        torch attention: sdpa or eager
#   BENCH_SFT_PACKING=position_ids  how torch gets the block-diagonal mask: position_ids
#                                (transformers' packed-sequence detection) or mask4d ([B,1,T,T])
#   BENCH_SFT_DATA=PATH          SFT records (default testdata/sft/train.jsonl)
#   BENCH_SFT_TOK_CORPUS="testdata/english.jsonl testdata/chinese.jsonl"  tokenizer corpus
#   BENCH_SFT_WICK_ARGS=""       extra args for every wick train run
#   BENCH_SKIP_WICK=1            run only the PyTorch side (no train binary needed)
#   BENCH_NO_BUILD=1             use the existing target/release binaries, do not run cargo
#   BENCH_BIN_DIR=DIR            take the binaries from DIR (implies BENCH_NO_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_sft: error: $*" >&2; exit 1; }
say() { echo "bench_sft: $*" >&2; }

RUNS=${BENCH_RUNS:-3}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
read -r -a METHODS <<< "${BENCH_SFT_METHODS:-lora full}"
for m in "${METHODS[@]}"; do
  [[ "$m" = lora || "$m" = full ]] || die "BENCH_SFT_METHODS: unknown method '$m' (lora, full)"
done
STEPS=${BENCH_SFT_STEPS:-30}
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -gt 5 ] \
  || die "BENCH_SFT_STEPS must be an integer > 5 (the first 5 steps are discarded), got '$STEPS'"
B=${BENCH_SFT_BATCH:-12}
T=${BENCH_SFT_SEQ:-64}
[[ "$B" =~ ^[1-9][0-9]*$ && "$T" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SFT_BATCH and BENCH_SFT_SEQ must be positive integers"
THREADS=${BENCH_THREADS:-2}
ATTN=${BENCH_TORCH_ATTN:-sdpa}
PACKING=${BENCH_SFT_PACKING:-position_ids}
SKIP_WICK=${BENCH_SKIP_WICK:-0}
DATA=${BENCH_SFT_DATA:-testdata/sft/train.jsonl}
read -r -a TOK_CORPUS <<< "${BENCH_SFT_TOK_CORPUS:-testdata/english.jsonl testdata/chinese.jsonl}"
VAL_FRACTION=0.1
VOCAB=4096
PRESET=scripts/presets/nano.json
read -r -a WICK_EXTRA <<< "${BENCH_SFT_WICK_ARGS:-}"
BIN=${BENCH_BIN_DIR:-target/release}
TRAIN=$BIN/train
PY=.venv/bin/python
DIR=bench-data/sft
SHARDS=$DIR/shards
BASE=$DIR/base

# --- binaries --------------------------------------------------------------------------------
pkgs=(-p tokenize -p pack)
[ "$SKIP_WICK" = 1 ] || pkgs+=(-p train)
if [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "cargo build --release ${pkgs[*]}"
  cargo build --release "${pkgs[@]}" || die "cargo build --release ${pkgs[*]} failed (see above)"
fi
bins=("$BIN/tokenize" "$BIN/pack")
[ "$SKIP_WICK" = 1 ] || bins+=("$TRAIN")
for b in "${bins[@]}"; do
  [ -x "$b" ] || die "$b not found; build it with: cargo build --release ${pkgs[*]} (BENCH_SKIP_WICK=1 times PyTorch alone)"
done

# --- python: torch + transformers + peft ---------------------------------------------------------
bash scripts/venv.sh || die "scripts/venv.sh failed"
if ! "$PY" -c 'import torch, transformers, safetensors, peft' 2>/dev/null; then
  say "installing torch, transformers, safetensors, peft into .venv (scripts/requirements-models.txt)."
  say "NOTE: this is large: the PyPI torch wheel brings gigabytes of CUDA libraries; for the"
  say "      CPU-only wheel set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu first."
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-models.txt \
    || die "pip install -r scripts/requirements-models.txt failed"
  "$PY" -c 'import torch, transformers, safetensors, peft' || die "torch/transformers/peft still do not import"
fi

# --- tokenizer, shards, base model (once) ----------------------------------------------------------
[ -s "$DATA" ] || die "SFT data $DATA does not exist or is empty (BENCH_SFT_DATA=PATH picks another)"
for c in "${TOK_CORPUS[@]}"; do [ -s "$c" ] || die "tokenizer corpus $c does not exist or is empty"; done
mkdir -p "$DIR"
stamp="data=$(cksum < "$DATA") corpus=$(cat "${TOK_CORPUS[@]}" | cksum) preset=$(cksum < "$PRESET") vocab=$VOCAB val=$VAL_FRACTION seq=$T"
if [ ! -f "$SHARDS/manifest.json" ] || [ ! -f "$BASE/config.json" ] \
    || [ "$(cat "$DIR/data.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "making $DIR/{tok,shards,base} from $DATA (wick tokenizer, vocab $VOCAB, val fraction $VAL_FRACTION)"
  rm -rf "$DIR/tok" "$SHARDS" "$BASE" "$DIR/data.stamp"
  mkdir -p "$DIR/tok"
  "$BIN/tokenize" train --vocab-size "$VOCAB" -q -o "$DIR/tok/" "${TOK_CORPUS[@]}" \
    || die "tokenize train failed"
  ( set -o pipefail
    "$BIN/tokenize" --tokenizer "$DIR/tok" -q "$DATA" \
      | "$BIN/pack" --tokenizer "$DIR/tok" --val-fraction "$VAL_FRACTION" -q -o "$SHARDS" ) \
    || die "tokenize | pack failed"
  "$PY" scripts/torch_sft.py --mode init --data "$SHARDS" --config "$PRESET" --seq-len "$T" \
    -o "$BASE" > /dev/null || die "torch_sft.py --mode init failed"
  echo "$stamp" > "$DIR/data.stamp"
fi
read -r TRAIN_TOKENS TRAIN_DOCS MASKED < <("$PY" - "$SHARDS" <<'EOF'
import json, os, sys
import numpy as np
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
ones = total = 0
for s in m["shards"]:
    if s["split"] == "train" and s.get("mask_file"):
        x = np.fromfile(os.path.join(d, s["mask_file"]), dtype=np.uint8, offset=1024)
        ones += int(x.sum()); total += len(x)
t = m["splits"]["train"]
print(t["tokens"], t["documents"], f"{ones / total:.2f}" if total else "-")
EOF
)

WORK=$(mktemp -d bench-data/sft-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/speed.tsv   # tool <TAB> method <TAB> run <TAB> ms_per_step <TAB> peak_rss_kb
: > "$RES"

source scripts/timing.sh

cores=$(nproc)
read -r load1 _ < /proc/loadavg
echo "== sft benchmark =="
echo "data:    $SHARDS ($TRAIN_DOCS train examples, $TRAIN_TOKENS tokens, $MASKED of them trained on; from $DATA, vocab $VOCAB)"
echo "model:   $BASE (nano preset, random init); batch $B x $T, $STEPS steps per run, the first 5 discarded"
echo "threads: $THREADS; runs: $RUNS; cores: $cores; load avg: $load1; timer: $TIMER"
echo "torch:   $("$PY" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'); attn $ATTN, packing $PACKING"
[ "$SKIP_WICK" = 1 ] && echo "wick:    skipped (BENCH_SKIP_WICK=1)"
if awk "BEGIN{exit !($load1 > $cores * 0.5)}"; then
  echo "WARNING: load average $load1 on $cores cores: the machine is busy, numbers will be noisy"
fi

# Log tail for error messages.
tail_of() { tail -n 5 "$1" 2>/dev/null | sed 's/^/    /'; }

# --- check: does transformers honour the packing? ------------------------------------------------
check=$("$PY" scripts/torch_sft.py --mode check --init "$BASE" --data "$SHARDS" --seq-len "$T" \
  --threads "$THREADS" --attn "$ATTN" --packing "$PACKING" 2> "$WORK/check.log") \
  || die "torch_sft.py --mode check: packed rows do not match their examples run alone:$(echo; tail_of "$WORK/check.log"; echo "    $check")"
"$PY" - "$check" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
r = {(x["packing"], x["attn"]): x["max_abs_diff"] for x in d["results"]}
ok = ", ".join(f"{p}/{a} {v:.1e}" for (p, a), v in r.items() if p != "none")
print(f"check:   {d['rows']} packed rows ({d['examples']} examples), max |logit diff| against each"
      f" example alone: {ok} (plain causal control: {r[('none', d['attn'])]:.2f}); loss"
      f" {d['loss_packed']:.6f} packed, {d['loss_separate']:.6f} alone")
EOF

# Median of "step_ms" in a wick metrics.jsonl, the first 5 training lines left out.
wick_ms() {
  "$PY" - "$1" <<'EOF'
import json, statistics, sys
ms = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        d = json.loads(line)
        if "step" in d and "step_ms" in d:
            ms.append(float(d["step_ms"]))
if len(ms) <= 5:
    sys.exit(f"{sys.argv[1]}: {len(ms)} lines with step and step_ms, need more than 5")
print(statistics.median(ms[5:]))
EOF
}

# --- speed ---------------------------------------------------------------------------------------
run_wick() {  # method run
  local out=$DIR/wick-$1 log=$WORK/wick-$1-$2.log ms kb
  rm -rf "$out"
  timed "$WORK/t" "$TRAIN" --task sft --method "$1" --model "$BASE" --data "$SHARDS" \
    --batch-size "$B" --seq-len "$T" --max-steps "$STEPS" --eval-interval 0 --threads "$THREADS" \
    --quiet -o "$out" "${WICK_EXTRA[@]}" > "$log" 2>&1 \
    || die "wick train --task sft --method $1 failed:$(echo; tail_of "$log")"
  [ -f "$out/metrics.jsonl" ] || die "wick train ($1) wrote no $out/metrics.jsonl"
  ms=$(wick_ms "$out/metrics.jsonl") || die "could not read wick's step times"
  read -r _ kb < <(timing "$WORK/t")
  printf 'wick\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ms" "$kb" >> "$RES"
  printf '  %-4s run %s  wick  %9.1f ms/step  %7.1f MiB peak RSS\n' "$1" "$2" "$ms" "$(awk "BEGIN{print $kb/1024}")"
}
run_torch() {  # method run
  local log=$WORK/torch-$1-$2.log ms kb
  timed "$WORK/t" "$PY" scripts/torch_sft.py --mode speed --method "$1" --model "$BASE" \
    --data "$SHARDS" --batch-size "$B" --seq-len "$T" --steps "$STEPS" --threads "$THREADS" \
    --attn "$ATTN" --packing "$PACKING" > "$WORK/torch.json" 2> "$log" \
    || die "torch_sft.py --mode speed --method $1 failed:$(echo; tail_of "$log")"
  ms=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["ms_per_step_median"])' "$WORK/torch.json")
  read -r _ kb < <(timing "$WORK/t")
  printf 'torch\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ms" "$kb" >> "$RES"
  printf '  %-4s run %s  torch %9.1f ms/step  %7.1f MiB peak RSS\n' "$1" "$2" "$ms" "$(awk "BEGIN{print $kb/1024}")"
}

echo
echo "-- speed: $STEPS steps per run, the first 5 discarded --"
for ((r = 1; r <= RUNS; r++)); do
  for m in "${METHODS[@]}"; do
    if ((r % 2)) && [ "$SKIP_WICK" != 1 ]; then run_wick "$m" "$r"; fi
    run_torch "$m" "$r"
    if ! ((r % 2)) && [ "$SKIP_WICK" != 1 ]; then run_wick "$m" "$r"; fi
  done
done

"$PY" - "$RES" "$B" "$T" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, method, run, ms, kb = line.rstrip("\n").split("\t")
    runs.setdefault((tool, method), []).append((float(ms), float(kb) / 1024))
ms = {k: statistics.median(x[0] for x in v) for k, v in runs.items()}
mib = {k: statistics.median(x[1] for x in v) for k, v in runs.items()}
methods = [m for m in ("lora", "full") if ("torch", m) in ms]
f = lambda d, k, fmt: format(d[k], fmt) if k in d else "-"
print()
print(f"== sft speed, batch {sys.argv[2]} x {sys.argv[3]}: median over runs of each run's median ms/step; median peak RSS ==")
print(f"{'method':<7} {'wick ms/step':>13} {'torch ms/step':>14} {'wick/torch':>10} "
      f"{'wick MiB':>9} {'torch MiB':>10}")
for m in methods:
    w, t = ("wick", m), ("torch", m)
    ratio = f"{ms[w] / ms[t]:10.2f}" if w in ms else f"{'-':>10}"
    print(f"{m:<7} {f(ms, w, '13.1f'):>13} {f(ms, t, '14.1f'):>14} {ratio} "
          f"{f(mib, w, '9.1f'):>9} {f(mib, t, '10.1f'):>10}")
if len(methods) == 2:
    for tool in ("wick", "torch"):
        if (tool, "lora") in ms and (tool, "full") in ms:
            print(f"{tool}: lora/full time {ms[(tool, 'lora')] / ms[(tool, 'full')]:.2f}, "
                  f"peak RSS {mib[(tool, 'lora')] - mib[(tool, 'full')]:+.1f} MiB "
                  f"({mib[(tool, 'lora')] / mib[(tool, 'full')]:.2f}x)")
print("(wick/torch < 1: wick is faster; peak RSS is the whole process, for torch the Python"
      " interpreter and the torch libraries included)")
EOF
