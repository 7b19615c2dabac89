#!/usr/bin/env bash
# Times two builds of wick side by side on the same data, for a change that must not move the
# figures (a refactor): the training step (nano and small presets), a short quality run, LoRA and
# full SFT steps, ppl and generate throughput. Not part of `make bench` (it compares wick with
# itself, not with a reference tool).
#
#   bash scripts/ab_compare.sh OLD_BIN_DIR NEW_BIN_DIR [DATA_DIR]
#
# OLD_BIN_DIR, NEW_BIN_DIR: folders holding release binaries of train, ppl and generate (e.g. a
# `cargo build --release` of each commit in its own worktree). DATA_DIR: a `make demo` folder
# (runs/demo: shards/, sft-shards/, model/) [default: runs/demo].
#
# Each measure runs AB_RUNS rounds (default 5), the two builds alternating which goes first, and
# prints the median of each and new/old. Flags are the ones both builds accept.
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=${1:?usage: ab_compare.sh OLD_BIN_DIR NEW_BIN_DIR [DATA_DIR]}
NEW=${2:?usage: ab_compare.sh OLD_BIN_DIR NEW_BIN_DIR [DATA_DIR]}
DATA=${3:-runs/demo}
RUNS=${AB_RUNS:-5}
THREADS=${AB_THREADS:-2}
QUALITY_STEPS=${AB_QUALITY_STEPS:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wick-ab.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for d in "$DATA/shards" "$DATA/sft-shards" "$DATA/model"; do
  [ -d "$d" ] || { echo "ab_compare: $d is missing (run make demo first)" >&2; exit 1; }
done
for b in "$OLD" "$NEW"; do
  for t in train ppl generate; do
    [ -x "$b/$t" ] || { echo "ab_compare: $b/$t is missing" >&2; exit 1; }
  done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# The median step_ms of a run's metrics.jsonl, its first 5 steps left out.
step_ms() {
  python3 -c '
import json, statistics, sys
ms = [json.loads(l)["step_ms"] for l in open(sys.argv[1]) if "step_ms" in l]
print(statistics.median(ms[5:] or ms))' "$1"
}

# measure NAME COMMAND...: runs COMMAND with $BIN set to each build, RUNS rounds; COMMAND
# prints one number.
measure() {
  local name=$1
  shift
  : >"$WORK/old" && : >"$WORK/new"
  for r in $(seq 1 "$RUNS"); do
    local order=(old new)
    [ $((r % 2)) = 0 ] && order=(new old)
    for which in "${order[@]}"; do
      local bin=$OLD
      [ "$which" = new ] && bin=$NEW
      BIN=$bin WHICH=$which "$@" >>"$WORK/$which"
    done
  done
  local o n
  o=$(median <"$WORK/old")
  n=$(median <"$WORK/new")
  printf '%-34s old %10s   new %10s   new/old %s\n' "$name" "$o" "$n" \
    "$(python3 -c "print(f'{$n/$o:.3f}')")"
}

train_step() { # preset
  rm -rf "$WORK/run"
  "$BIN/train" --data "$DATA/shards" --config "$1" --max-steps 30 --eval-interval 0 \
    --threads "$THREADS" --quiet -o "$WORK/run"
  step_ms "$WORK/run/metrics.jsonl"
}

sft_step() { # method
  rm -rf "$WORK/run"
  "$BIN/train" --task sft --method "$1" --init "$DATA/model" --data "$DATA/sft-shards" \
    --max-steps 25 --eval-interval 0 --threads "$THREADS" --quiet -o "$WORK/run"
  step_ms "$WORK/run/metrics.jsonl"
}

quality() { # prints the wall seconds; the final val loss goes to $WORK/loss-<old|new>
  rm -rf "$WORK/run"
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN/train" --data "$DATA/shards" --config nano --max-steps "$QUALITY_STEPS" \
    --eval-interval "$QUALITY_STEPS" --threads "$THREADS" --quiet -o "$WORK/run"
  t1=$(date +%s.%N)
  python3 -c '
import json, sys
print([json.loads(l)["val_loss"] for l in open(sys.argv[1]) if "val_loss" in l][-1])' \
    "$WORK/run/metrics.jsonl" >>"$WORK/loss-$WHICH"
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}

ppl_rate() {
  "$BIN/ppl" --model "$DATA/model" --data "$DATA/shards" --split train --max-tokens 40000 \
    --threads "$THREADS" --quiet | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_s"]))'
}

generate_rate() {
  printf '%s\n' 'HAMLET:' 'KING HENRY:' 'To be' 'The' '明月几时有' 'O' >"$WORK/prompts.txt"
  "$BIN/generate" --model "$DATA/model" --max-new-tokens 48 --temperature 0 --ignore-eos \
    --threads "$THREADS" "$WORK/prompts.txt" 2>&1 >/dev/null |
    sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p'
}

echo "== wick A/B: old $OLD, new $NEW, data $DATA, $RUNS rounds, $THREADS threads =="
measure "train nano ms/step" train_step nano
measure "train small ms/step" train_step small
measure "sft lora ms/step" sft_step lora
measure "sft full ms/step" sft_step full
measure "ppl tokens/s" ppl_rate
measure "generate tokens/s" generate_rate
RUNS=$(( (RUNS + 1) / 2 )) measure "quality run: wall s ($QUALITY_STEPS steps)" quality
echo "quality run final val loss: old $(sort -u "$WORK/loss-old" | tr '\n' ' ')  new $(sort -u "$WORK/loss-new" | tr '\n' ' ')"
