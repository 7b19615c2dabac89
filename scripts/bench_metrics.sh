#!/usr/bin/env bash
# Benchmarks `eval --task generation` against the reference packages (sacrebleu for corpus BLEU
# and chrF, rouge-score for ROUGE-1/2/L) on the same pairs.
#
#   bash scripts/bench_metrics.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Steps: build the release `eval`; write BENCH_METRICS_PAIRS distinct prediction/reference pairs
# (consecutive lines of testdata/english.jsonl, scripts/metrics_peer.py pairs) to
# bench-data/metrics/; then BENCH_RUNS rounds, the order rotating, of
#   wick:   eval --task generation --metrics bleu,chrf,rouge --threads 1   (and with 2 threads)
#   python: scripts/metrics_peer.py score  (BLEU().corpus_score, CHRF().corpus_score,
#           RougeScorer(["rouge1","rouge2","rougeL"]).score per pair, mean F)
# each timed as a whole process (start-up, reading the JSONL and all). Prints the medians, the
# ratios python/wick (above 1 = wick faster), python's compute-only seconds (imports and reading
# left out) and whether the scores agree to 1e-9.
#
# Environment:
#   BENCH_RUNS=5               timed rounds
#   BENCH_METRICS_PAIRS=20000  pairs (at most ~20k distinct ones in the corpus)
#   BENCH_NO_BUILD=1           use the existing target/release/eval
#   BENCH_BIN_DIR=DIR          take the binary from DIR (implies BENCH_NO_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_metrics: error: $*" >&2; exit 1; }
say() { echo "bench_metrics: $*" >&2; }

RUNS=${BENCH_RUNS:-5}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
NPAIRS=${BENCH_METRICS_PAIRS:-20000}
[[ "$NPAIRS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_METRICS_PAIRS must be a positive integer"
BIN=${BENCH_BIN_DIR:-target/release}
PY=.venv/bin/python
DIR=bench-data/metrics
PAIRS=$DIR/pairs-$NPAIRS.jsonl
source scripts/timing.sh

if [ -z "${BENCH_BIN_DIR:-}" ] && [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  say "building eval (release)"
  cargo build --release --quiet -p eval
fi
[ -x "$BIN/eval" ] || die "$BIN/eval not found"
[ -x "$PY" ] || bash scripts/venv.sh
"$PY" -c "import sacrebleu, rouge_score" 2>/dev/null \
  || die "the venv lacks sacrebleu or rouge-score: bash scripts/venv.sh"

mkdir -p "$DIR"
if [ ! -s "$PAIRS" ]; then
  "$PY" scripts/metrics_peer.py pairs "$PAIRS.tmp" "$NPAIRS" && mv "$PAIRS.tmp" "$PAIRS"
fi
say "$(wc -l < "$PAIRS") pairs in $PAIRS; $TIMER"

WICK_ARGS=(--task generation --metrics bleu,chrf,rouge --quiet "$PAIRS")
declare -a W1 W2 P PC
for ((r = 0; r < RUNS; r++)); do
  for k in 0 1 2; do
    case $(( (k + r) % 3 )) in
      0) timed "$DIR/t" "$BIN/eval" "${WICK_ARGS[@]}" --threads 1 > "$DIR/wick.json"
         W1+=("$(timing "$DIR/t" | cut -d' ' -f1)") ;;
      1) timed "$DIR/t" "$BIN/eval" "${WICK_ARGS[@]}" --threads 2 > /dev/null
         W2+=("$(timing "$DIR/t" | cut -d' ' -f1)") ;;
      2) timed "$DIR/t" "$PY" scripts/metrics_peer.py score "$PAIRS" > "$DIR/python.json"
         P+=("$(timing "$DIR/t" | cut -d' ' -f1)")
         PC+=("$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$DIR/python.json")") ;;
    esac
  done
  say "round $((r + 1))/$RUNS: wick 1 thread ${W1[-1]}s, 2 threads ${W2[-1]}s, python ${P[-1]}s (compute ${PC[-1]}s)"
done

"$PY" - "$DIR/wick.json" "$DIR/python.json" "${W1[*]}" "${W2[*]}" "${P[*]}" "${PC[*]}" <<'PYEOF'
import json, statistics, sys
wick, py = (json.load(open(p)) for p in sys.argv[1:3])
w1, w2, p, pc = (statistics.median(map(float, s.split())) for s in sys.argv[3:7])
n = wick["records"]
print(f"\n== eval --task generation vs sacrebleu + rouge-score: {n} pairs, median of {len(sys.argv[3].split())} runs ==")
print(f"  python (whole process)      {p:8.3f} s   ({n / p:9.0f} pairs/s; compute only {pc:.3f} s)")
print(f"  wick eval, 1 thread         {w1:8.3f} s   ({n / w1:9.0f} pairs/s)   python/wick {p / w1:5.1f}x  (compute-only python/wick {pc / w1:5.1f}x)")
print(f"  wick eval, 2 threads        {w2:8.3f} s   ({n / w2:9.0f} pairs/s)   python/wick {p / w2:5.1f}x")
pairs = [("BLEU", wick["bleu"]["score"], py["bleu"]), ("chrF", wick["chrf"]["score"], py["chrf"])]
pairs += [(k, wick["rouge"][k]["fmeasure"], py[k]) for k in ("rouge1", "rouge2", "rougeL")]
for name, a, b in pairs:
    print(f"  {name:7s} wick {a:.12f}  python {b:.12f}  {'agree' if abs(a - b) <= 1e-9 else 'DIFFER'}")
PYEOF
