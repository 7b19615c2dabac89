#!/usr/bin/env bash
# Benchmarks wick's precision and memory settings (issue 21) against PyTorch + transformers (+ PEFT)
# on the CPU: train --precision bf16, train --grad-checkpoint, ppl/generate --dtype bf16.
#
#   bash scripts/bench_precision.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Takes about 60 minutes on 2 cores with the defaults (a ~12 min, b ~8, c ~15, d ~5, e ~20; the
# first run also builds the models and data, under a minute). For a quick look:
#   BENCH_RUNS=1 BENCH_QUALITY_STEPS=200 BENCH_PRECISION_STEPS=10 BENCH_PRECISION_MEM_STEPS=8 \
#   BENCH_PRECISION_EVAL_NEW=32 BENCH_PRECISION_LORA_STEPS=7 bash scripts/bench_precision.sh
#
# Steps:
#   1. Build the release binaries (tokenize, pack, train, ppl, generate); make sure .venv has
#      torch, transformers and peft (scripts/requirements-models.txt, installed when missing:
#      large, the PyPI torch wheel brings gigabytes of CUDA libraries). The wick side of a section
#      runs only when the binaries have the flags (train --precision and --grad-checkpoint; ppl and
#      generate --dtype); otherwise it is skipped with a message and the PyTorch side still runs.
#   2. Data, made once and shared with bench_train.sh: bench-data/train/{tok,shards} (a 4096-token
#      wick tokenizer on testdata/english.jsonl, val fraction 0.15, exactly as bench_train.sh makes
#      them); for e, bench-data/precision/sft/{tok,shards} as bench_sft.sh makes its own
#      (tokenizer on english + chinese, testdata/sft/train.jsonl with loss masks, val 0.1).
#      Models (scripts/make_precision_models.py, random weights, nothing downloaded):
#      bench-data/precision/model-small (d; the small preset, seeded, f32) and
#      bench-data/precision/smollm2-135m (e; SmolLM2-135M's shape from memory of its config:
#      hidden 576, intermediate 1536, 30 layers, 9 heads / 3 KV heads, vocab 49152, tied
#      embeddings, rope_theta 1e5; 134.5M parameters, saved in bf16 as the real checkpoint is).
#   Every section runs BENCH_RUNS rounds, alternating (or rotating) which tool goes first, and
#   prints the median over rounds of each figure and the ratios against the issue's targets
#   (scripts/bench_precision_report.py). ms/step is always the median of a run's step times with
#   the first 5 steps left out (wick: "step_ms" of metrics.jsonl; torch: the scripts' own timing
#   of the same steps). Peak RSS is GNU time's (scripts/timing.sh) for the whole process.
#   a. Train step, small preset (scripts/presets/small.json), batch 8 x 256, BENCH_PRECISION_STEPS
#      steps: wick `train --task pretrain --precision f32` and `--precision bf16`; torch_train.py
#      --mode speed --precision bf16 (torch.autocast("cpu", bfloat16), f32 weights) and, unless
#      BENCH_PRECISION_TORCH_F32=0, --precision f32. Targets: wick bf16 / wick f32 <= 0.6,
#      wick bf16 / torch bf16 <= 1.0.
#   b. Quality: bench_train.sh's nano recipe (BENCH_QUALITY_STEPS steps, batch 12 x 64, lr 1e-3 ->
#      1e-4, warmup 100, eval every 500 on 20 batches) in wick --precision f32 and bf16, once each;
#      one evaluator scores both: `ppl --model DIR --data SHARDS --seq-len 64 --dtype f32` (val
#      split). Target: |NLL bf16 - NLL f32| <= 0.02 nats. (wick only; skipped without --precision.)
#   c. Memory: the small preset at seq BENCH_PRECISION_MEM_SEQ (1024; its max_position_embeddings
#      raised to that in bench-data/precision/small-ctx<T>.json, given to both tools), batch
#      BENCH_PRECISION_MEM_BATCH (4), precision BENCH_PRECISION_MEM_PRECISION (f32),
#      BENCH_PRECISION_MEM_STEPS steps, without and with checkpointing: wick `train` without and
#      with --grad-checkpoint; torch_train.py without and with --grad-checkpoint (transformers'
#      activation checkpointing, torch.utils.checkpoint per decoder layer). Targets (wick,
#      checkpointed / not): peak RSS <= 0.5x, step time <= 1.4x.
#   d. ppl and generate in bf16 on model-small: wick `ppl --dtype bf16` and `--dtype f32`
#      (--seq-len 256 --batch-size 8 on the val split of bench-data/train/shards) vs
#      hf_eval_dtype.py --dtype bf16 --mode ppl (hf_eval.py's ppl with the model loaded in
#      bfloat16); wick `generate --dtype bf16` and `--dtype f32` (--temperature 0 --ignore-eos,
#      BENCH_PRECISION_EVAL_NEW tokens for each of BENCH_PRECISION_EVAL_PROMPTS prompts, the
#      first 8 words of lines spread over english.jsonl) vs hf_eval_dtype.py --dtype bf16 --mode
#      generate --prefix bos. Measured as bench_eval.sh measures: wick ppl its own tokens_per_s,
#      transformers the timed batches after a warm-up; wick generate the whole command's wall time
#      (load included), transformers the model.generate calls only. Targets: ppl wick bf16 /
#      transformers bf16 >= 1.5x, generate >= 2x, wick generate bf16 / f32 >= 1.7x (shown for
#      the whole command and for generate's own tokens/s, its stderr summary, load left out).
#      Also prints the NLLs (bf16 vs transformers bf16 vs wick f32) and where the greedy ids of
#      wick bf16 and transformers bf16 first differ.
#   e. LoRA SFT step on smollm2-135m: wick `train --task sft --method lora --lora-r 8
#      --lora-alpha 16 --lora-targets q,k,v,o --precision bf16 --grad-checkpoint` vs
#      torch_sft_amp.py (torch_sft.py's packing and loss, PEFT LoraConfig(r 8, alpha 16,
#      q/k/v/o_proj), bf16 autocast, activation checkpointing, the frozen base loaded in each
#      dtype of BENCH_PRECISION_LORA_TORCH_BASE), batch 4 x 256, BENCH_PRECISION_LORA_STEPS
#      steps: ms/step and peak RSS each.
#
# Outputs stay in bench-data/precision/: the models, sft/, small-ctx<T>.json, runs/<section>-<label>/
# (the last wick run of each kind). Scratch files go to a temporary folder, removed at the end.
#
# Environment:
#   BENCH_RUNS=3                      rounds per section
#   BENCH_PRECISION_SKIP=""           sections to leave out, e.g. "b e" (any of a b c d e)
#   BENCH_THREADS=2                   --threads for both tools (torch.set_num_threads)
#   BENCH_PRECISION_STEPS=30          a: steps per run (the first 5 are discarded)
#   BENCH_PRECISION_TORCH_F32=1       a: also time torch in f32 (0: only torch bf16)
#   BENCH_QUALITY_STEPS=2000          b: steps of each quality run
#   BENCH_PRECISION_MEM_SEQ=1024      c: sequence length
#   BENCH_PRECISION_MEM_BATCH=4       c: batch size
#   BENCH_PRECISION_MEM_STEPS=12      c: steps per run (the first 5 are discarded)
#   BENCH_PRECISION_MEM_PRECISION=f32 c: --precision of all four runs (f32, bf16)
#   BENCH_PRECISION_EVAL_NEW=128      d: generated tokens per prompt
#   BENCH_PRECISION_EVAL_PROMPTS=8    d: prompts
#   BENCH_PRECISION_LORA_BATCH=4      e: batch size (rows of seq + 1 tokens, packed examples)
#   BENCH_PRECISION_LORA_SEQ=256      e: sequence length
#   BENCH_PRECISION_LORA_STEPS=10     e: steps per run (the first 5 are discarded)
#   BENCH_PRECISION_LORA_TORCH_BASE=bf16  e: dtype(s) torch loads the frozen base in ("bf16 f32"
#                                     times both)
#   BENCH_TORCH_ATTN=sdpa             torch attention (a, c, e): sdpa or eager
#   BENCH_SKIP_WICK=1                 run only the PyTorch side (no wick binaries beyond tokenize
#                                     and pack needed)
#   BENCH_NO_BUILD=1                  use the existing target/release binaries, do not run cargo
#   BENCH_BIN_DIR=DIR                 take the binaries from DIR (implies BENCH_NO_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_precision: error: $*" >&2; exit 1; }
say() { echo "bench_precision: $*" >&2; }
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
steps_ok() { [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -gt 5 ] \
  || die "$1 must be an integer > 5 (the first 5 steps are discarded), got '$2'"; }

RUNS=${BENCH_RUNS:-3}; posint BENCH_RUNS "$RUNS"
THREADS=${BENCH_THREADS:-2}; posint BENCH_THREADS "$THREADS"
SKIP=" ${BENCH_PRECISION_SKIP:-} "
for s in $SKIP; do [[ "$s" =~ ^[a-e]$ ]] || die "BENCH_PRECISION_SKIP: unknown section '$s' (a b c d e)"; done
on() { [[ "$SKIP" != *" $1 "* ]]; }
SPEED_STEPS=${BENCH_PRECISION_STEPS:-30}; steps_ok BENCH_PRECISION_STEPS "$SPEED_STEPS"
TORCH_F32=${BENCH_PRECISION_TORCH_F32:-1}
QUALITY_STEPS=${BENCH_QUALITY_STEPS:-2000}; posint BENCH_QUALITY_STEPS "$QUALITY_STEPS"
MEM_SEQ=${BENCH_PRECISION_MEM_SEQ:-1024}; posint BENCH_PRECISION_MEM_SEQ "$MEM_SEQ"
MEM_BATCH=${BENCH_PRECISION_MEM_BATCH:-4}; posint BENCH_PRECISION_MEM_BATCH "$MEM_BATCH"
MEM_STEPS=${BENCH_PRECISION_MEM_STEPS:-12}; steps_ok BENCH_PRECISION_MEM_STEPS "$MEM_STEPS"
MEM_PREC=${BENCH_PRECISION_MEM_PRECISION:-f32}
[[ "$MEM_PREC" = f32 || "$MEM_PREC" = bf16 ]] || die "BENCH_PRECISION_MEM_PRECISION: f32 or bf16, got '$MEM_PREC'"
EVAL_SEQ=256 EVAL_BATCH=8
EVAL_NEW=${BENCH_PRECISION_EVAL_NEW:-128}; posint BENCH_PRECISION_EVAL_NEW "$EVAL_NEW"
NPROMPTS=${BENCH_PRECISION_EVAL_PROMPTS:-8}; posint BENCH_PRECISION_EVAL_PROMPTS "$NPROMPTS"
LORA_B=${BENCH_PRECISION_LORA_BATCH:-4}; posint BENCH_PRECISION_LORA_BATCH "$LORA_B"
LORA_T=${BENCH_PRECISION_LORA_SEQ:-256}; posint BENCH_PRECISION_LORA_SEQ "$LORA_T"
LORA_STEPS=${BENCH_PRECISION_LORA_STEPS:-10}; steps_ok BENCH_PRECISION_LORA_STEPS "$LORA_STEPS"
read -r -a LORA_BASES <<< "${BENCH_PRECISION_LORA_TORCH_BASE:-bf16}"
for d in "${LORA_BASES[@]}"; do [[ "$d" = bf16 || "$d" = f32 ]] || die "BENCH_PRECISION_LORA_TORCH_BASE: bf16 and/or f32, got '$d'"; done
LORA_R=8 LORA_ALPHA=16
ATTN=${BENCH_TORCH_ATTN:-sdpa}
SKIP_WICK=${BENCH_SKIP_WICK:-0}
BIN=${BENCH_BIN_DIR:-target/release}
TRAIN=$BIN/train PPL=$BIN/ppl GEN=$BIN/generate
PY=.venv/bin/python
DIR=bench-data/precision
TDIR=bench-data/train      # shared with bench_train.sh
SHARDS=$TDIR/shards
CORPUS=testdata/english.jsonl
VOCAB=4096

# --- binaries ----------------------------------------------------------------------------------
pkgs=(-p tokenize -p pack)
[ "$SKIP_WICK" = 1 ] || pkgs+=(-p train -p ppl -p generate)
if [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "cargo build --release ${pkgs[*]}"
  cargo build --release "${pkgs[@]}" || die "cargo build --release ${pkgs[*]} failed (see above)"
fi
bins=("$BIN/tokenize" "$BIN/pack")
[ "$SKIP_WICK" = 1 ] || bins+=("$TRAIN" "$PPL" "$GEN")
for b in "${bins[@]}"; do
  [ -x "$b" ] || die "$b not found; build it with: cargo build --release ${pkgs[*]} (BENCH_SKIP_WICK=1 times PyTorch alone)"
done
# Which wick flags exist (issue 21): each section's wick side needs its own.
W_PREC=0 W_CKPT=0 W_DTYPE=0
if [ "$SKIP_WICK" != 1 ]; then
  thelp=$("$TRAIN" --help 2>&1 || true)
  [[ "$thelp" == *--precision* ]] && W_PREC=1
  [[ "$thelp" == *--grad-checkpoint* ]] && W_CKPT=1
  [[ "$("$PPL" --help 2>&1 || true)" == *--dtype* && "$("$GEN" --help 2>&1 || true)" == *--dtype* ]] && W_DTYPE=1
fi

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

# --- one run at a time ---------------------------------------------------------------------------
# Two runs would share bench-data/precision/ (run folders, models) and time each other's load.
mkdir -p "$TDIR" "$DIR"
exec 9> "$DIR/.lock"
flock -n 9 || die "another bench_precision.sh is running here (it holds $DIR/.lock); wait for it to end"

# --- shards (bench_train.sh's, made the same way) --------------------------------------------------
[ -s "$CORPUS" ] || die "corpus $CORPUS does not exist or is empty"
stamp="$(cksum < "$CORPUS") vocab=$VOCAB val=0.15"
if [ ! -f "$SHARDS/manifest.json" ] || [ "$(cat "$TDIR/shards.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "making $SHARDS from $CORPUS (wick tokenizer, vocab $VOCAB, val fraction 0.15)"
  rm -rf "$TDIR/tok" "$SHARDS" "$TDIR/shards.stamp"
  mkdir -p "$TDIR/tok"
  "$BIN/tokenize" train --vocab-size "$VOCAB" -q -o "$TDIR/tok/" "$CORPUS" || die "tokenize train failed"
  ( set -o pipefail
    "$BIN/tokenize" --tokenizer "$TDIR/tok" -q "$CORPUS" \
      | "$BIN/pack" --tokenizer "$TDIR/tok" --val-fraction 0.15 -q -o "$SHARDS" ) \
    || die "tokenize | pack failed"
  echo "$stamp" > "$TDIR/shards.stamp"
fi
TOKSUM=$(cksum < "$TDIR/tok/tokenizer.json")

WORK=$(mktemp -d bench-data/precision-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/results.jsonl
: > "$RES"
mkdir -p "$DIR/runs"

source scripts/timing.sh

cores=$(nproc)
read -r load1 _ < /proc/loadavg
echo "== precision and memory benchmark =="
echo "threads: $THREADS; runs: $RUNS; cores: $cores; load avg: $load1; timer: $TIMER"
echo "torch:   $("$PY" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'); attn $ATTN"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); bf16 flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -wE 'avx512_bf16|amx_bf16' | tr '\n' ' ' || true)"
if [ "$SKIP_WICK" = 1 ]; then
  echo "wick:    skipped (BENCH_SKIP_WICK=1)"
else
  echo "wick:    $BIN (train --precision: $([ $W_PREC = 1 ] && echo yes || echo no), --grad-checkpoint: $([ $W_CKPT = 1 ] && echo yes || echo no); ppl/generate --dtype: $([ $W_DTYPE = 1 ] && echo yes || echo no))"
  [ $W_PREC = 1 ] && [ $W_CKPT = 1 ] \
    || echo "NOTE: $TRAIN lacks --precision/--grad-checkpoint (issue 21 not in this build): the wick side of a, b, c, e is skipped"
  [ $W_DTYPE = 1 ] || echo "NOTE: $PPL / $GEN lack --dtype (issue 21 not in this build): the wick side of d is skipped"
fi
[ "$SKIP" = "  " ] || echo "skipped sections:${SKIP% }"
busy() {  # warns when the machine is busy (each section calls it again)
  local l
  read -r l _ < /proc/loadavg
  if awk "BEGIN{exit !($l > $cores * 0.5)}"; then
    echo "WARNING: load average $l on $cores cores: the machine is busy, numbers will be noisy"
    echo "         (torch's OpenMP threads wait for each other at every op: a busy machine slows"
    echo "         it far more than wick, e.g. 10x on e's small ops, so wick/torch ratios flatter wick)"
  fi
}
busy
WICK_TRAIN=0; [ "$SKIP_WICK" != 1 ] && [ $W_PREC = 1 ] && [ $W_CKPT = 1 ] && WICK_TRAIN=1
WICK_EVAL=0; [ "$SKIP_WICK" != 1 ] && [ $W_DTYPE = 1 ] && WICK_EVAL=1

# Log tail for error messages.
tail_of() { tail -n 5 "$1" 2>/dev/null | sed 's/^/    /'; }
mib() { awk "BEGIN{printf \"%.0f\", $1/1024}"; }

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
# One field of the last JSON object a tool printed (a whole-file object, else the last line that parses).
jfield() {  # file field
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
obj = None
for chunk in [text] + text.splitlines()[::-1]:
    try:
        obj = json.loads(chunk)
        break
    except ValueError:
        pass
if not isinstance(obj, dict) or sys.argv[2] not in obj:
    sys.exit(f"{sys.argv[1]}: no JSON object with {sys.argv[2]!r}: {text.strip()[-300:]}")
print(obj[sys.argv[2]])
EOF
}
record() {  # section label run key=value...
  local s=$1 l=$2 r=$3; shift 3
  local kv="" x
  for x in "$@"; do kv+=", \"${x%%=*}\": ${x#*=}"; done
  printf '{"s": "%s", "label": "%s", "run": %s%s}\n' "$s" "$l" "$r" "$kv" >> "$RES"
}

# wick train, timed: section label run -- train args (-o, --eval-interval 0, --threads, --quiet
# added). Records ms (median step_ms, steps 6..) and kb.
wick_train() {
  local s=$1 l=$2 r=$3; shift 4
  local out=$DIR/runs/$s-$l log=$WORK/$s-$l-$r.log ms kb
  rm -rf "$out"
  timed "$WORK/t" "$TRAIN" "$@" --eval-interval 0 --threads "$THREADS" -o "$out" --quiet \
    > "$log" 2>&1 || die "wick train ($s $l) failed:$(echo; tail_of "$log")"
  [ -f "$out/metrics.jsonl" ] || die "wick train ($s $l) wrote no $out/metrics.jsonl"
  ms=$(wick_ms "$out/metrics.jsonl") || die "could not read wick's step times ($s $l)"
  read -r _ kb < <(timing "$WORK/t")
  record "$s" "$l" "$r" "ms=$ms" "kb=$kb"
  printf '  %s run %s  %-22s %9.1f ms/step  %6s MiB peak RSS\n' "$s" "$r" "$l" "$ms" "$(mib "$kb")"
}
# A torch peer in speed mode, timed: section label run -- script args. Its JSON line's
# ms_per_step_median is the figure.
torch_speed() {
  local s=$1 l=$2 r=$3; shift 4
  local log=$WORK/$s-$l-$r.log json=$WORK/$s-$l-$r.json ms kb
  timed "$WORK/t" "$PY" "$@" > "$json" 2> "$log" \
    || die "$* failed ($s $l):$(echo; tail_of "$log")"
  ms=$(jfield "$json" ms_per_step_median) || die "bad output from $1 ($s $l)"
  read -r _ kb < <(timing "$WORK/t")
  record "$s" "$l" "$r" "ms=$ms" "kb=$kb"
  printf '  %s run %s  %-22s %9.1f ms/step  %6s MiB peak RSS\n' "$s" "$r" "$l" "$ms" "$(mib "$kb")"
}
# Runs the functions named in $@ (each a "cmd arg..." string) in an order that rotates every round.
rotate() {  # run items...
  local r=$1; shift
  local n=$# k items=("$@")
  for ((k = 0; k < n; k++)); do
    eval "${items[(r - 1 + k) % n]} $r"
  done
}

# --- a. train step, small preset ---------------------------------------------------------------
if on a; then
  B=8 T=256
  echo
  echo "-- a. train step: small preset, batch $B x $T, $SPEED_STEPS steps a run, the first 5 discarded --"
  busy
  a_wick() { wick_train a "wick-$1" "$2" -- --task pretrain --data "$SHARDS" \
    --config scripts/presets/small.json --batch-size $B --seq-len $T --max-steps "$SPEED_STEPS" \
    --precision "$1"; }
  a_torch() { torch_speed a "torch-$1" "$2" -- scripts/torch_train.py --mode speed --data "$SHARDS" \
    --config scripts/presets/small.json --batch-size $B --seq-len $T --steps "$SPEED_STEPS" \
    --threads "$THREADS" --attn "$ATTN" --precision "$1"; }
  items=()
  [ $WICK_TRAIN = 1 ] && items+=("a_wick f32" "a_wick bf16")
  items+=("a_torch bf16")
  [ "$TORCH_F32" = 1 ] && items+=("a_torch f32")
  for ((r = 1; r <= RUNS; r++)); do rotate "$r" "${items[@]}"; done
  "$PY" scripts/bench_precision_report.py a "$RES" B=$B T=$T steps="$SPEED_STEPS" runs="$RUNS"
fi

# --- b. quality: nano recipe, wick f32 vs bf16 -----------------------------------------------------
if on b; then
  echo
  if [ $WICK_TRAIN != 1 ]; then
    echo "-- b. quality: skipped (needs wick train --precision) --"
  else
    B=12 T=64
    echo "-- b. quality: nano, $QUALITY_STEPS steps, batch $B x $T, lr 1e-3 -> 1e-4, warmup 100, eval every 500 on 20 batches; f32 and bf16 --"
    busy
    ppl_f32=(--dtype f32)
    for p in f32 bf16; do
      out=$DIR/runs/b-wick-$p
      rm -rf "$out"
      timed "$WORK/t" "$TRAIN" --task pretrain --data "$SHARDS" --config scripts/presets/nano.json \
        --batch-size $B --seq-len $T --max-steps "$QUALITY_STEPS" --lr 1e-3 --min-lr 1e-4 \
        --warmup 100 --eval-interval 500 --eval-batches 20 --threads "$THREADS" --precision "$p" \
        -o "$out" --quiet > "$WORK/b-$p.log" 2>&1 \
        || die "wick train (quality, $p) failed:$(echo; tail_of "$WORK/b-$p.log")"
      read -r wall kb < <(timing "$WORK/t")
      "$PPL" --model "$out" --data "$SHARDS" --seq-len $T "${ppl_f32[@]}" --threads "$THREADS" \
        > "$WORK/b-ppl-$p.json" 2> "$WORK/b-ppl-$p.err" \
        || die "ppl --model $out failed:$(echo; tail_of "$WORK/b-ppl-$p.err")"
      nll=$(jfield "$WORK/b-ppl-$p.json" nll) || die "bad ppl output"
      own=$("$PY" -c '
import json, sys
v = "null"
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        d = json.loads(line)
        v = d.get("val_loss", v)
print(v if v == "null" else f"{float(v):.4f}")' "$out/metrics.jsonl")
      record b "wick-$p" 1 "nll=$nll" "wall=$wall" "kb=$kb" "own_val=$own"
      printf '  wick %-4s  %8.1f s wall, %6s MiB peak RSS, val NLL %.4f (own last val loss %s) -> %s\n' \
        "$p" "$wall" "$(mib "$kb")" "$nll" "$own" "$out"
    done
    "$PY" scripts/bench_precision_report.py b "$RES" steps="$QUALITY_STEPS"
  fi
fi

# --- c. memory: seq 1024, with and without checkpointing ---------------------------------------------
if on c; then
  CFG=$DIR/small-ctx$MEM_SEQ.json
  "$PY" - scripts/presets/small.json "$MEM_SEQ" "$CFG" <<'EOF' || die "writing $CFG failed"
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["max_position_embeddings"] = max(cfg["max_position_embeddings"], int(sys.argv[2]))
with open(sys.argv[3], "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
EOF
  echo
  echo "-- c. memory: small preset (context raised to $MEM_SEQ: $CFG), batch $MEM_BATCH x $MEM_SEQ, precision $MEM_PREC, $MEM_STEPS steps a run --"
  busy
  c_wick() { local extra=(); [ "$1" = ckpt ] && extra=(--grad-checkpoint)
    wick_train c "wick${1:+-$1}" "$2" -- --task pretrain --data "$SHARDS" --config "$CFG" \
      --batch-size "$MEM_BATCH" --seq-len "$MEM_SEQ" --max-steps "$MEM_STEPS" --precision "$MEM_PREC" \
      "${extra[@]}"; }
  c_torch() { local extra=(); [ "$1" = ckpt ] && extra=(--grad-checkpoint)
    torch_speed c "torch${1:+-$1}" "$2" -- scripts/torch_train.py --mode speed --data "$SHARDS" \
      --config "$CFG" --batch-size "$MEM_BATCH" --seq-len "$MEM_SEQ" --steps "$MEM_STEPS" \
      --threads "$THREADS" --attn "$ATTN" --precision "$MEM_PREC" "${extra[@]}"; }
  items=()
  [ $WICK_TRAIN = 1 ] && items+=("c_wick ''" "c_wick ckpt")
  items+=("c_torch ''" "c_torch ckpt")
  for ((r = 1; r <= RUNS; r++)); do rotate "$r" "${items[@]}"; done
  "$PY" scripts/bench_precision_report.py c "$RES" B="$MEM_BATCH" T="$MEM_SEQ" precision="$MEM_PREC" \
    steps="$MEM_STEPS" runs="$RUNS"
fi

# --- d. ppl and generate in bf16 -------------------------------------------------------------------
if on d; then
  MODEL=$DIR/model-small
  if [ ! -f "$MODEL/model.safetensors" ] || [ "$(cat "$DIR/model-small.stamp" 2>/dev/null)" != "$TOKSUM" ]; then
    say "creating the small preset's random model -> $MODEL/"
    rm -rf "$MODEL"
    "$PY" scripts/make_precision_models.py small --tokenizer "$TDIR/tok" -o "$MODEL" > /dev/null \
      || die "make_precision_models.py small failed"
    echo "$TOKSUM" > "$DIR/model-small.stamp"
  fi
  PROMPTS=$DIR/prompts-$NPROMPTS.jsonl
  "$PY" - "$CORPUS" "$NPROMPTS" "$PROMPTS" <<'EOF' || die "making the prompts failed"
import json, sys
corpus, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [l for l in open(corpus, encoding="utf-8") if l.strip()]
with open(out, "w", encoding="utf-8") as f:
    for i in range(n):  # as bench_eval.sh: lines spread over the file, first 8 words of each
        words = json.loads(lines[i * len(lines) // n])["text"].split()
        f.write(json.dumps({"prompt": " ".join(words[:8])}) + "\n")
EOF
  echo
  echo "-- d. ppl (seq $EVAL_SEQ, batch $EVAL_BATCH, val split of $SHARDS) and generate ($NPROMPTS prompts x $EVAL_NEW tokens, greedy) on $MODEL --"
  busy
  check_gen() {  # output JSONL: NPROMPTS lines of EVAL_NEW ids each
    "$PY" - "$1" "$NPROMPTS" "$EVAL_NEW" <<'EOF'
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
  d_wick_ppl() {  # dtype run
    local t=$WORK/t out=$WORK/d-ppl-$1.json tps steady nll kb s
    timed "$t" "$PPL" --model "$MODEL" --data "$SHARDS" --seq-len $EVAL_SEQ --batch-size $EVAL_BATCH \
      --dtype "$1" --threads "$THREADS" > "$out" 2> "$WORK/d-ppl-$1.err" \
      || die "wick ppl --dtype $1 failed:$(echo; tail_of "$WORK/d-ppl-$1.err")"
    read -r s kb < <(timing "$t")
    tps=$(jfield "$out" tokens_per_s) && nll=$(jfield "$out" nll) || die "bad wick ppl output"
    steady=$(jfield "$out" steady_tokens_per_s 2> /dev/null) || steady=$tps
    record d "wick-ppl-$1" "$2" "tps=$tps" "steady=$steady" "nll=$nll" "wall=$s" "kb=$kb"
    printf '  d run %s  wick ppl %-4s          %9.0f tokens/s (%0.f after the first batch), nll %.5f\n' \
      "$2" "$1" "$tps" "$steady" "$nll"
  }
  d_hf_ppl() {  # run
    local t=$WORK/t out=$WORK/d-hf-ppl.json tps nll kb s
    timed "$t" "$PY" scripts/hf_eval_dtype.py --dtype bf16 --model "$MODEL" --mode ppl --data "$SHARDS" \
      --seq-len $EVAL_SEQ --batch-size $EVAL_BATCH --threads "$THREADS" > "$out" 2> "$WORK/d-hf-ppl.err" \
      || die "hf_eval_dtype.py --mode ppl failed:$(echo; tail_of "$WORK/d-hf-ppl.err")"
    read -r s kb < <(timing "$t")
    tps=$(jfield "$out" tokens_per_s) && nll=$(jfield "$out" nll) || die "bad hf_eval output"
    record d hf-ppl-bf16 "$1" "tps=$tps" "nll=$nll" "wall=$s" "kb=$kb"
    printf '  d run %s  transformers ppl bf16  %9.0f tokens/s, nll %.5f\n' "$1" "$tps" "$nll"
  }
  d_wick_gen() {  # dtype run
    local t=$WORK/t out=$WORK/d-gen-$1.jsonl kb s tps
    timed "$t" "$GEN" --model "$MODEL" --dtype "$1" --max-new-tokens "$EVAL_NEW" --temperature 0 \
      --ignore-eos --threads "$THREADS" < "$PROMPTS" > "$out" 2> "$WORK/d-gen-$1.err" \
      || die "wick generate --dtype $1 failed:$(echo; tail_of "$WORK/d-gen-$1.err")"
    check_gen "$out" || die "wick generate --dtype $1: unexpected output"
    read -r s kb < <(timing "$t")
    tps=$(awk "BEGIN{print $NPROMPTS * $EVAL_NEW / $s}")
    # generate's own summary line on stderr: "... new tokens in S s (R tokens/s)", load not included.
    own=$(grep -oE '\([0-9.]+ tokens/s\)' "$WORK/d-gen-$1.err" | tail -n 1 | tr -dc '0-9.' || true)
    [ -n "$own" ] || own=null
    record d "wick-gen-$1" "$2" "tps=$tps" "own=$own" "wall=$s" "kb=$kb"
    printf '  d run %s  wick generate %-4s     %9.1f tokens/s (wall %.2f s; its own figure, load left out: %s tokens/s)\n' \
      "$2" "$1" "$tps" "$s" "$own"
  }
  d_hf_gen() {  # run
    local t=$WORK/t out=$WORK/d-hf-gen.json kb s tps
    timed "$t" "$PY" scripts/hf_eval_dtype.py --dtype bf16 --model "$MODEL" --mode generate \
      --prompts "$PROMPTS" --max-new-tokens "$EVAL_NEW" --prefix bos --threads "$THREADS" \
      --out "$WORK/d-hf-gen.jsonl" > "$out" 2> "$WORK/d-hf-gen.err" \
      || die "hf_eval_dtype.py --mode generate failed:$(echo; tail_of "$WORK/d-hf-gen.err")"
    check_gen "$WORK/d-hf-gen.jsonl" || die "hf_eval_dtype.py generate: unexpected output"
    read -r s kb < <(timing "$t")
    tps=$(jfield "$out" tokens_per_s) || die "bad hf_eval output"
    record d hf-gen-bf16 "$1" "tps=$tps" "wall=$s" "kb=$kb"
    printf '  d run %s  transformers generate  %9.1f tokens/s (generate calls; process wall %.2f s)\n' "$1" "$tps" "$s"
  }
  items=()
  [ $WICK_EVAL = 1 ] && items+=("d_wick_ppl bf16")
  items+=("d_hf_ppl")
  [ $WICK_EVAL = 1 ] && items+=("d_wick_ppl f32" "d_wick_gen bf16")
  items+=("d_hf_gen")
  [ $WICK_EVAL = 1 ] && items+=("d_wick_gen f32")
  for ((r = 1; r <= RUNS; r++)); do rotate "$r" "${items[@]}"; done
  "$PY" scripts/bench_precision_report.py d "$RES" T=$EVAL_SEQ B=$EVAL_BATCH prompts="$NPROMPTS" \
    new="$EVAL_NEW" runs="$RUNS" wick_gen="$WORK/d-gen-bf16.jsonl" hf_gen="$WORK/d-hf-gen.jsonl"
fi

# --- e. LoRA step on a 135M Llama --------------------------------------------------------------------
if on e; then
  SD=$DIR/sft SMODEL=$DIR/smollm2-135m SDATA=testdata/sft/train.jsonl
  TOK_CORPUS=(testdata/english.jsonl testdata/chinese.jsonl)
  sstamp="data=$(cksum < "$SDATA") corpus=$(cat "${TOK_CORPUS[@]}" | cksum) vocab=$VOCAB val=0.1 model=smollm2-135m"
  if [ ! -f "$SD/shards/manifest.json" ] || [ ! -f "$SMODEL/model.safetensors" ] \
      || [ "$(cat "$SD/data.stamp" 2>/dev/null)" != "$sstamp" ]; then
    say "making $SD/{tok,shards} from $SDATA and the random SmolLM2-135M-shaped model $SMODEL/"
    rm -rf "$SD" "$SMODEL"
    mkdir -p "$SD/tok"
    "$BIN/tokenize" train --vocab-size "$VOCAB" -q -o "$SD/tok/" "${TOK_CORPUS[@]}" || die "tokenize train failed"
    ( set -o pipefail
      "$BIN/tokenize" --tokenizer "$SD/tok" -q "$SDATA" \
        | "$BIN/pack" --tokenizer "$SD/tok" --val-fraction 0.1 -q -o "$SD/shards" ) \
      || die "tokenize | pack failed"
    "$PY" scripts/make_precision_models.py smollm2-135m --tokenizer "$SD/tok" -o "$SMODEL" > /dev/null \
      || die "make_precision_models.py smollm2-135m failed"
    echo "$sstamp" > "$SD/data.stamp"
  fi
  echo
  echo "-- e. LoRA SFT step: $SMODEL (134.5M parameters, bf16 safetensors), batch $LORA_B x $LORA_T, r $LORA_R alpha $LORA_ALPHA q/k/v/o, bf16 + checkpointing, $LORA_STEPS steps a run --"
  busy
  e_wick() { wick_train e wick-lora "$1" -- --task sft --method lora --model "$SMODEL" --data "$SD/shards" \
    --batch-size "$LORA_B" --seq-len "$LORA_T" --max-steps "$LORA_STEPS" --lora-r $LORA_R \
    --lora-alpha $LORA_ALPHA --lora-targets q,k,v,o --precision bf16 --grad-checkpoint; }
  e_torch() { torch_speed e "torch-lora-$1" "$2" -- scripts/torch_sft_amp.py --precision bf16 \
    --grad-checkpoint --base-dtype "$1" --mode speed --method lora --init "$SMODEL" --data "$SD/shards" \
    --batch-size "$LORA_B" --seq-len "$LORA_T" --steps "$LORA_STEPS" --threads "$THREADS" \
    --attn "$ATTN" --lora-r $LORA_R --lora-alpha $LORA_ALPHA --lora-targets q_proj,k_proj,v_proj,o_proj; }
  items=()
  [ $WICK_TRAIN = 1 ] && items+=("e_wick")
  for d in "${LORA_BASES[@]}"; do items+=("e_torch $d"); done
  for ((r = 1; r <= RUNS; r++)); do rotate "$r" "${items[@]}"; done
  "$PY" scripts/bench_precision_report.py e "$RES" B="$LORA_B" T="$LORA_T" r=$LORA_R alpha=$LORA_ALPHA \
    targets=q,k,v,o steps="$LORA_STEPS" runs="$RUNS" base=bf16
fi
echo
echo "bench_precision: done"
