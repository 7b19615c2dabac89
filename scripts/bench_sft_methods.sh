#!/usr/bin/env bash
# The three fine-tuning methods side by side on the testdata SFT task (testdata/sft: Song ci
# openings from their tune name, Shakespeare speech continuations): held-out response perplexity
# before and after `train --task sft` with --method full, lora and adapter, and each run's step
# time and peak memory; then step time and peak memory of the three at a larger size, where the
# optimiser state of full fine-tuning dominates.
#
#   bash scripts/bench_sft_methods.sh      (also run by `make bench`)
#
# Steps:
#   1. The base: BENCH_SFT_BASE (default runs/demo/model, which `make demo` trains: the nano
#      preset pretrained on testdata/ for 1500 steps); made by `make demo` when missing.
#   2. testdata/sft/train.jsonl -> tokenize (the base's tokenizer) -> pack --val-fraction 0.05.
#   3. ppl of the held-out records (testdata/sft/heldout.jsonl, responses only) under the base.
#   4. For each method: train --task sft --method M --model BASE (SFT defaults: 3 epochs, batch 12
#      x 64 packed, lr BENCH_SFT_LR (default 1e-4, the recipe's) warmup 3%, cosine to 1e-6),
#      timed by /usr/bin/time for peak RSS; ms/step = median of step_ms; then held-out ppl with
#      the result (full: the new folder; lora/adapter: the base with --adapter); for LoRA also
#      lora-merge and ppl of the merged folder (must equal base + adapter).
#   5. Memory at the small preset (6 layers x 384, context 256; random init, the values do not
#      matter for time or memory): 10 SFT steps of batch 8 x 256 per method.
#
# Environment: BENCH_SFT_BASE, BENCH_SFT_LR, BENCH_SFT_EPOCHS (3), BENCH_THREADS (2),
# BENCH_SKIP_SMALL=1 (skip step 5), BENCH_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/release
BASE=${BENCH_SFT_BASE:-runs/demo/model}
LR=${BENCH_SFT_LR:-1e-4}
EPOCHS=${BENCH_SFT_EPOCHS:-3}
THREADS=${BENCH_THREADS:-2}
DIR=bench-data/sft-methods
say() { echo "bench_sft_methods: $*" >&2; }

[ "${BENCH_NO_BUILD:-0}" = 1 ] || cargo build --release --workspace -q
if [ ! -f "$BASE/model.safetensors" ]; then
  [ "$BASE" = runs/demo/model ] || { say "no model in $BASE"; exit 1; }
  say "no demo model yet: running make demo"
  make demo >/dev/null
fi
rm -rf "$DIR" && mkdir -p "$DIR"
$BIN/tokenize --tokenizer "$BASE" testdata/sft/train.jsonl > "$DIR/ids.jsonl"
$BIN/pack --tokenizer "$BASE" --val-fraction 0.05 -o "$DIR/shards" "$DIR/ids.jsonl" 2>/dev/null

nll() { python3 -c "import json,sys; d=json.load(sys.stdin); print('%.4f %.2f' % (d['nll'], d['ppl']))"; }
median_ms() {
  python3 -c "
import json,statistics,sys
L=[json.loads(l)['step_ms'] for l in open(sys.argv[1]) if '\"step_ms\"' in l]
print('%.1f' % statistics.median(L[5:] or L))" "$1/metrics.jsonl"
}
heldout=testdata/sft/heldout.jsonl
before=$($BIN/ppl --model "$BASE" --quiet $heldout | nll)
printf '\n== SFT on testdata/sft (%s): held-out response nll / ppl, %s records ==\n' "$BASE" "$(wc -l < $heldout)"
printf '%-8s %10s %10s %10s %10s %8s %10s\n' method nll ppl ms/step peakMiB steps "train s"
printf '%-8s %10s %10s\n' base ${before}
for m in full lora adapter; do
  out=$DIR/$m
  /usr/bin/time -f '%M %e' -o "$DIR/$m.time" $BIN/train --task sft --method $m --model "$BASE" \
    --data "$DIR/shards" --epochs "$EPOCHS" --lr "$LR" --threads "$THREADS" --quiet -o "$out"
  if [ $m = full ]; then
    after=$($BIN/ppl --model "$out" --quiet $heldout | nll)
  else
    after=$($BIN/ppl --model "$BASE" --adapter "$out" --quiet $heldout | nll)
  fi
  read -r rss secs < "$DIR/$m.time"
  steps=$(tail -n 1 "$out/metrics.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)['step'])")
  printf '%-8s %10s %10s %10s %10.1f %8s %10s\n' $m ${after} "$(median_ms "$out")" "$(echo "$rss/1024" | bc -l)" "$steps" "$secs"
done
$BIN/lora-merge --model "$BASE" --adapter "$DIR/lora" -o "$DIR/merged" 2>/dev/null
printf '%-8s %10s %10s   (lora-merge of the LoRA run: equals base + adapter)\n' merged $($BIN/ppl --model "$DIR/merged" --quiet $heldout | nll)

[ "${BENCH_SKIP_SMALL:-0}" = 1 ] && exit 0
printf '\n== memory at the small preset (6 x 384, context 256), batch 8 x 256, 10 steps ==\n'
$BIN/train --data "$DIR/shards" --config small --max-steps 1 --eval-interval 0 --batch-size 1 \
  --seq-len 256 --threads "$THREADS" --quiet -o "$DIR/small-base"
printf '%-8s %10s %10s %14s\n' method ms/step peakMiB "trained params"
for m in full lora adapter; do
  out=$DIR/small-$m
  /usr/bin/time -f '%M %e' -o "$DIR/small-$m.time" $BIN/train --task sft --method $m \
    --model "$DIR/small-base" --data "$DIR/shards" --max-steps 10 --eval-interval 0 \
    --batch-size 8 --seq-len 256 --threads "$THREADS" -o "$out" 2> "$DIR/small-$m.log"
  read -r rss secs < "$DIR/small-$m.time"
  params=$(grep -o 'train: [0-9]* parameters' "$DIR/small-$m.log" | grep -o '[0-9]*')
  printf '%-8s %10s %10.1f %14s\n' $m "$(median_ms "$out")" "$(echo "$rss/1024" | bc -l)" "$params"
done
