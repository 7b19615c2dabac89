#!/usr/bin/env bash
# Benchmarks wick `train --task pretrain` against PyTorch + transformers (scripts/torch_train.py)
# on the CPU: training speed, then the quality of a short pretraining run.
#
#   bash scripts/bench_train.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Takes about 16 minutes on 2 cores with the defaults (speed ~8 min, quality ~6 min); for a quick
# look: BENCH_RUNS=1 BENCH_PRESETS=nano BENCH_QUALITY_STEPS=200.
#
# Steps:
#   1. Build the release binaries (tokenize, pack, train, ppl); make sure .venv has torch and
#      transformers (installed from scripts/requirements-models.txt when missing: large, the PyPI
#      torch wheel brings gigabytes of CUDA libraries).
#   2. Once: train a 4096-token BPE tokenizer on testdata/english.jsonl with wick and pack the
#      corpus into bench-data/train/shards (val fraction 0.15: 22 documents, 22k tokens, enough for
#      20 eval batches of 12 x 64). Rebuilt only when the corpus, vocab size or val fraction change.
#   3. Speed, per preset (scripts/presets/<name>.json; nano: batch 12 x seq 64, small: 8 x 256),
#      BENCH_RUNS rounds, the two tools alternating which goes first:
#        wick:  train --task pretrain --max-steps 30 --eval-interval 0 --threads 2 --quiet -o DIR
#               ms/step = median of "step_ms" in DIR/metrics.jsonl, the first 5 steps left out
#        torch: torch_train.py --mode speed --steps 30 --threads 2 (same data, config, B, T):
#               the median step time of the same steps
#      and prints the median over rounds of each, wick/torch (below 1 = wick faster), and GFLOP/s
#      for both from one formula (torch_train.py --mode flops):
#        FLOPs/step = 6*N*B*T + 12*n_layer*n_head*head_dim*T*B*T, N = weights of every matmul
#        (q/k/v/o, gate/up/down, lm_head; not the embedding lookup, not the norms).
#   4. Quality: nanoGPT's CPU recipe on the nano preset (2000 steps, lr 1e-3 cosine to 1e-4, 100
#      warmup steps, batch 12 x 64, AdamW wd 0.1 betas 0.9/0.95, clip 1.0, val every 500 steps on
#      20 batches) in both tools, each timed (wall, peak RSS), then ONE evaluator scores both
#      models: `ppl --model DIR --data SHARDS --seq-len 64` (mean NLL per token on the val split).
#      wick is given only the flags below and is expected to default to the same AdamW settings.
#
# Outputs stay in bench-data/train/: tok/, shards/, wick-<preset>/ (speed runs), wick-quality/
# and torch-quality/ (Hugging Face model folders, each with the run's metrics.jsonl).
#
# Environment:
#   BENCH_RUNS=3                speed rounds per preset
#   BENCH_PRESETS="nano small"  presets to time (nano and small have built-in batch/seq shapes)
#   BENCH_SPEED_STEPS=30        steps per speed run (the first 5 are discarded)
#   BENCH_THREADS=2             --threads for both tools
#   BENCH_TORCH_ATTN=sdpa       torch attention for the speed runs; "sdpa eager" times both
#   BENCH_QUALITY_STEPS=2000    steps of the quality run (eval every 500, and at the end)
#   BENCH_SKIP_SPEED=1          skip step 3
#   BENCH_SKIP_QUALITY=1        skip step 4
#   BENCH_SKIP_WICK=1           run only the PyTorch side (no train/ppl binaries needed)
#   BENCH_TRAIN_CORPUS=PATH     JSONL corpus for the shards (default testdata/english.jsonl)
#   BENCH_TRAIN_VAL_FRACTION=0.15
#   BENCH_TRAIN_WICK_ARGS=""    extra args for every wick train run
#   BENCH_NO_BUILD=1            use the existing target/release binaries, do not run cargo
#   BENCH_BIN_DIR=DIR           take the binaries from DIR (implies BENCH_NO_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_train: error: $*" >&2; exit 1; }
say() { echo "bench_train: $*" >&2; }

RUNS=${BENCH_RUNS:-3}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
read -r -a PRESETS <<< "${BENCH_PRESETS:-nano small}"
SPEED_STEPS=${BENCH_SPEED_STEPS:-30}
[[ "$SPEED_STEPS" =~ ^[0-9]+$ ]] && [ "$SPEED_STEPS" -gt 5 ] \
  || die "BENCH_SPEED_STEPS must be an integer > 5 (the first 5 steps are discarded), got '$SPEED_STEPS'"
THREADS=${BENCH_THREADS:-2}
read -r -a ATTNS <<< "${BENCH_TORCH_ATTN:-sdpa}"
QUALITY_STEPS=${BENCH_QUALITY_STEPS:-2000}
[[ "$QUALITY_STEPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_QUALITY_STEPS must be a positive integer"
SKIP_WICK=${BENCH_SKIP_WICK:-0}
CORPUS=${BENCH_TRAIN_CORPUS:-testdata/english.jsonl}
VAL_FRACTION=${BENCH_TRAIN_VAL_FRACTION:-0.15}
VOCAB=4096
read -r -a WICK_EXTRA <<< "${BENCH_TRAIN_WICK_ARGS:-}"
BIN=${BENCH_BIN_DIR:-target/release}
TRAIN=$BIN/train
PPL=$BIN/ppl
PY=.venv/bin/python
DIR=bench-data/train
SHARDS=$DIR/shards

shape() {  # preset -> "B T"
  case $1 in
    nano) echo "12 64" ;;
    small) echo "8 256" ;;
    *) die "no batch/seq shape for preset '$1' (known: nano, small)" ;;
  esac
}
for p in "${PRESETS[@]}"; do
  [ -f "scripts/presets/$p.json" ] || die "scripts/presets/$p.json not found"
  shape "$p" > /dev/null
done

# --- binaries --------------------------------------------------------------------------------
pkgs=(-p tokenize -p pack)
[ "$SKIP_WICK" = 1 ] || pkgs+=(-p train -p ppl)
if [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "cargo build --release ${pkgs[*]}"
  cargo build --release "${pkgs[@]}" || die "cargo build --release ${pkgs[*]} failed (see above)"
fi
bins=("$BIN/tokenize" "$BIN/pack")
[ "$SKIP_WICK" = 1 ] || bins+=("$TRAIN" "$PPL")
for b in "${bins[@]}"; do
  [ -x "$b" ] || die "$b not found; build it with: cargo build --release ${pkgs[*]} (BENCH_SKIP_WICK=1 times PyTorch alone)"
done

# --- python: torch + transformers --------------------------------------------------------------
bash scripts/venv.sh || die "scripts/venv.sh failed"
if ! "$PY" -c 'import torch, transformers, safetensors' 2>/dev/null; then
  say "installing torch, transformers, safetensors into .venv (scripts/requirements-models.txt)."
  say "NOTE: this is large: the PyPI torch wheel brings gigabytes of CUDA libraries; for the"
  say "      CPU-only wheel set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu first."
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-models.txt \
    || die "pip install -r scripts/requirements-models.txt failed"
  "$PY" -c 'import torch, transformers, safetensors' || die "torch/transformers still do not import"
fi

# --- shards (once) -------------------------------------------------------------------------------
[ -s "$CORPUS" ] || die "corpus $CORPUS does not exist or is empty"
mkdir -p "$DIR"
stamp="$(cksum < "$CORPUS") vocab=$VOCAB val=$VAL_FRACTION"
if [ ! -f "$SHARDS/manifest.json" ] || [ "$(cat "$DIR/shards.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "making $SHARDS from $CORPUS (wick tokenizer, vocab $VOCAB, val fraction $VAL_FRACTION)"
  rm -rf "$DIR/tok" "$SHARDS" "$DIR/shards.stamp"
  mkdir -p "$DIR/tok"
  "$BIN/tokenize" train --vocab-size "$VOCAB" -q -o "$DIR/tok/" "$CORPUS" || die "tokenize train failed"
  ( set -o pipefail
    "$BIN/tokenize" --tokenizer "$DIR/tok" -q "$CORPUS" \
      | "$BIN/pack" --tokenizer "$DIR/tok" --val-fraction "$VAL_FRACTION" -q -o "$SHARDS" ) \
    || die "tokenize | pack failed"
  echo "$stamp" > "$DIR/shards.stamp"
fi
read -r TRAIN_TOKENS VAL_TOKENS VAL_DOCS < <("$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))
s = m["splits"]
print(s["train"]["tokens"], s.get("val", {}).get("tokens", 0), s.get("val", {}).get("documents", 0))' \
  "$SHARDS/manifest.json")

WORK=$(mktemp -d bench-data/train-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/speed.tsv   # tool <TAB> preset <TAB> attn <TAB> run <TAB> ms_per_step
: > "$RES"

source scripts/timing.sh

cores=$(nproc)
read -r load1 _ < /proc/loadavg
echo "== train benchmark =="
echo "shards:  $SHARDS ($TRAIN_TOKENS train tokens, $VAL_TOKENS val tokens in $VAL_DOCS documents; from $CORPUS, vocab $VOCAB)"
echo "threads: $THREADS; runs: $RUNS; cores: $cores; load avg: $load1; timer: $TIMER"
echo "torch:   $("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
[ "$SKIP_WICK" = 1 ] && echo "wick:    skipped (BENCH_SKIP_WICK=1)"
if awk "BEGIN{exit !($load1 > $cores * 0.5)}"; then
  echo "WARNING: load average $load1 on $cores cores: the machine is busy, numbers will be noisy"
fi

# Log tail for error messages.
tail_of() { tail -n 5 "$1" 2>/dev/null | sed 's/^/    /'; }

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
run_wick_speed() {  # preset B T run
  local out=$DIR/wick-$1 log=$WORK/wick-$1-$4.log
  rm -rf "$out"
  "$TRAIN" --task pretrain --data "$SHARDS" --config "scripts/presets/$1.json" --batch-size "$2" \
    --seq-len "$3" --max-steps "$SPEED_STEPS" --eval-interval 0 --threads "$THREADS" -o "$out" \
    --quiet "${WICK_EXTRA[@]}" > "$log" 2>&1 \
    || die "wick train ($1) failed:$(echo; tail_of "$log")"
  [ -f "$out/metrics.jsonl" ] || die "wick train ($1) wrote no $out/metrics.jsonl"
  local ms
  ms=$(wick_ms "$out/metrics.jsonl") || die "could not read wick's step times"
  printf 'wick\t%s\t-\t%s\t%s\n' "$1" "$4" "$ms" >> "$RES"
  printf '  %-6s run %s  wick          %9.1f ms/step\n' "$1" "$4" "$ms"
}
run_torch_speed() {  # preset B T run attn
  local log=$WORK/torch-$1-$5-$4.log json ms
  json=$("$PY" scripts/torch_train.py --mode speed --data "$SHARDS" --config "scripts/presets/$1.json" \
    --batch-size "$2" --seq-len "$3" --steps "$SPEED_STEPS" --threads "$THREADS" --attn "$5" 2> "$log") \
    || die "torch_train.py --mode speed ($1, $5) failed:$(echo; tail_of "$log")"
  ms=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["ms_per_step_median"])' "$json")
  printf 'torch\t%s\t%s\t%s\t%s\n' "$1" "$5" "$4" "$ms" >> "$RES"
  printf '  %-6s run %s  torch (%-5s) %9.1f ms/step\n' "$1" "$4" "$5" "$ms"
}

if [ "${BENCH_SKIP_SPEED:-0}" != 1 ]; then
  echo
  echo "-- speed: $SPEED_STEPS steps per run, the first 5 discarded --"
  FLOPS=$WORK/flops.tsv   # preset <TAB> B <TAB> T <TAB> flops_per_step <TAB> params
  : > "$FLOPS"
  for p in "${PRESETS[@]}"; do
    read -r B T < <(shape "$p")
    "$PY" scripts/torch_train.py --mode flops --data "$SHARDS" --config "scripts/presets/$p.json" \
      --batch-size "$B" --seq-len "$T" 2> /dev/null \
      | "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(*sys.argv[1:], d["flops_per_step"], d["params"], sep="\t")' \
        "$p" "$B" "$T" >> "$FLOPS" || die "torch_train.py --mode flops ($p) failed"
    for ((r = 1; r <= RUNS; r++)); do
      if ((r % 2)) && [ "$SKIP_WICK" != 1 ]; then run_wick_speed "$p" "$B" "$T" "$r"; fi
      for a in "${ATTNS[@]}"; do run_torch_speed "$p" "$B" "$T" "$r" "$a"; done
      if ! ((r % 2)) && [ "$SKIP_WICK" != 1 ]; then run_wick_speed "$p" "$B" "$T" "$r"; fi
    done
  done
  "$PY" - "$RES" "$FLOPS" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, preset, attn, run, ms = line.rstrip("\n").split("\t")
    runs.setdefault((tool, preset, attn), []).append(float(ms))
med = {k: statistics.median(v) for k, v in runs.items()}
print()
print("== train speed: median over runs of each run's median ms/step ==")
head = (f"{'preset':<7} {'B x T':>8} {'params':>11} {'wick ms/step':>13} {'torch ms/step':>20} "
        f"{'wick/torch':>10} {'wick GFLOP/s':>13} {'torch GFLOP/s':>14}")
print(head)
for line in open(sys.argv[2]):
    preset, b, t, flops, params = line.rstrip("\n").split("\t")
    flops = int(flops)
    gf = lambda ms: flops / (ms / 1000) / 1e9
    w = med.get(("wick", preset, "-"))
    for (tool, p, attn), tms in med.items():
        if tool != "torch" or p != preset:
            continue
        ws = f"{w:13.1f}" if w else f"{'-':>13}"
        ratio = f"{w / tms:10.2f}" if w else f"{'-':>10}"
        wg = f"{gf(w):13.2f}" if w else f"{'-':>13}"
        print(f"{preset:<7} {b + 'x' + t:>8} {int(params):>11,} {ws} {f'{tms:.1f} ({attn})':>20} "
              f"{ratio} {wg} {gf(tms):14.2f}")
print(f"(wick/torch < 1: wick is faster. FLOPs/step = 6*N*B*T + 12*layers*heads*head_dim*T*B*T,"
      f" N = matmul weights incl. lm_head)")
EOF
fi

# --- quality -------------------------------------------------------------------------------------
if [ "${BENCH_SKIP_QUALITY:-0}" != 1 ]; then
  B=12 T=64
  EVAL_INTERVAL=500 EVAL_BATCHES=20
  echo
  echo "-- quality: nano, $QUALITY_STEPS steps, batch $B x $T, lr 1e-3 -> 1e-4, warmup 100, eval every $EVAL_INTERVAL on $EVAL_BATCHES batches --"
  WQ=$DIR/wick-quality TQ=$DIR/torch-quality
  if [ "$SKIP_WICK" != 1 ]; then
    rm -rf "$WQ"
    timed "$WORK/t" "$TRAIN" --task pretrain --data "$SHARDS" --config scripts/presets/nano.json \
      --batch-size "$B" --seq-len "$T" --max-steps "$QUALITY_STEPS" --lr 1e-3 --min-lr 1e-4 \
      --warmup 100 --eval-interval "$EVAL_INTERVAL" --eval-batches "$EVAL_BATCHES" \
      --threads "$THREADS" -o "$WQ" --quiet "${WICK_EXTRA[@]}" > "$WORK/wick-quality.log" 2>&1 \
      || die "wick train (quality) failed:$(echo; tail_of "$WORK/wick-quality.log")"
    read -r WICK_S WICK_KB < <(timing "$WORK/t")
    printf '  wick train:   %8.1f s wall, %7.1f MiB peak RSS -> %s\n' "$WICK_S" \
      "$(awk "BEGIN{print $WICK_KB/1024}")" "$WQ"
  fi
  rm -rf "$TQ"
  timed "$WORK/t" "$PY" scripts/torch_train.py --mode train --data "$SHARDS" \
    --config scripts/presets/nano.json --batch-size "$B" --seq-len "$T" --steps "$QUALITY_STEPS" \
    --lr 1e-3 --min-lr 1e-4 --warmup 100 --weight-decay 0.1 --beta1 0.9 --beta2 0.95 \
    --grad-clip 1.0 --eval-interval "$EVAL_INTERVAL" --eval-batches "$EVAL_BATCHES" \
    --threads "$THREADS" --attn "${ATTNS[0]}" -o "$TQ" > "$WORK/torch-quality.jsonl" \
    2> "$WORK/torch-quality.log" \
    || die "torch_train.py --mode train failed:$(echo; tail_of "$WORK/torch-quality.log")"
  read -r TORCH_S TORCH_KB < <(timing "$WORK/t")
  cp "$WORK/torch-quality.jsonl" "$TQ/metrics.jsonl"   # beside the model, as wick keeps its own
  printf '  torch train:  %8.1f s wall, %7.1f MiB peak RSS -> %s\n' "$TORCH_S" \
    "$(awk "BEGIN{print $TORCH_KB/1024}")" "$TQ"

  # Each tool's own last val loss (first EVAL_BATCHES batches), then the common evaluator.
  curve() {  # metrics JSONL -> "step:val_loss ..." for every evaluation
    "$PY" -c '
import json, sys
pts = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        d = json.loads(line)
        if "val_loss" in d and "step" in d:
            step, val = d["step"], float(d["val_loss"])
            pts.append(f"{step}:{val:.4f}")
print(" ".join(pts) or "-")' "$1"
  }
  own_val() {  # metrics JSONL -> last "val_loss" (or "-")
    "$PY" -c '
import json, sys
v = "-"
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        d = json.loads(line)
        v = d.get("val_loss", d.get("final_val_loss", v))
print(v if v == "-" else f"{float(v):.4f}")' "$1"
  }
  echo
  echo "== train quality: $QUALITY_STEPS steps of the nanoGPT CPU recipe, nano preset =="
  echo "own val loss by step (first $EVAL_BATCHES val batches):"
  [ "$SKIP_WICK" = 1 ] || echo "  wick:  $(curve "$WQ/metrics.jsonl")"
  echo "  torch: $(curve "$TQ/metrics.jsonl")"
  if [ "$SKIP_WICK" = 1 ]; then
    echo "torch: own final val loss $(own_val "$TQ/metrics.jsonl") (first $EVAL_BATCHES val batches), wall ${TORCH_S} s"
    echo "(BENCH_SKIP_WICK=1: no wick run and no ppl evaluation)"
  else
    ppl_of() {  # model dir -> "nll ppl tokens"
      local json
      json=$("$PPL" --model "$1" --data "$SHARDS" --seq-len "$T" 2> "$WORK/ppl.log") \
        || die "ppl --model $1 failed:$(echo; tail_of "$WORK/ppl.log")"
      "$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["nll"], d["ppl"], d.get("tokens", "?"))' "$json"
    }
    read -r WNLL WPPL WTOK < <(ppl_of "$WQ")
    read -r TNLL TPPL TTOK < <(ppl_of "$TQ")
    "$PY" - "$WNLL" "$WPPL" "$WTOK" "$WICK_S" "$(own_val "$WQ/metrics.jsonl")" \
      "$TNLL" "$TPPL" "$TTOK" "$TORCH_S" "$(own_val "$TQ/metrics.jsonl")" <<'EOF'
import sys
wn, wp, wt, ws, wo, tn, tp, tt, ts, to = sys.argv[1:]
wn, wp, ws, tn, tp, ts = map(float, (wn, wp, ws, tn, tp, ts))
print(f"evaluator: ppl --seq-len 64 on the val split ({wt} / {tt} tokens scored)")
print(f"{'':<6} {'val NLL':>9} {'ppl':>9} {'own val loss':>13} {'wall s':>9}")
print(f"{'wick':<6} {wn:9.4f} {wp:9.2f} {wo:>13} {ws:9.1f}")
print(f"{'torch':<6} {tn:9.4f} {tp:9.2f} {to:>13} {ts:9.1f}")
print(f"NLL wick - torch: {wn - tn:+.4f} nats/token; wall time wick/torch: {ws / ts:.2f}")
EOF
  fi
fi
