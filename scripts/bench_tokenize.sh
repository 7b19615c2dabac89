#!/usr/bin/env bash
# Benchmarks wick `tokenize` (and `tokenize | pack`) against HF tokenizers' encode_batch.
#
#   bash scripts/bench_tokenize.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Steps: build the release binaries (cargo build --release -p tokenize -p pack), make sure the
# Python venv and the benchmark corpus exist, run wick tokenize once untimed (warm-up + sanity
# check that its token count matches the Python peer's), then for BENCH_RUNS rounds time, in an
# order that rotates every round:
#   (a) target/release/tokenize --tokenizer T -q CORPUS > /dev/null   wall time + peak RSS
#   (b) scripts/bench_hf_tokenize.py CORPUS (HF encode_batch, both cores; see its notes: it
#       writes nothing and its headline time excludes reading/parsing, which favours Python)
#   (c) tokenize ... CORPUS | pack --tokenizer T -q -o TMPDIR          wall time + peak RSS
# and finally wick tokenize's peak RSS on a half-size copy of the corpus, to show memory does not
# grow with the input. Prints medians, MB/s (MB = 1e6 bytes of corpus file) and the ratios.
#
# Environment:
#   BENCH_RUNS=5             timed rounds
#   BENCH_CORPUS=PATH        use this JSONL corpus instead of building bench-data/corpus.jsonl
#   BENCH_CORPUS_MB=64       size of the built corpus in MiB (ignored with BENCH_CORPUS)
#   BENCH_TOKENIZE_ARGS=""   extra args for wick tokenize in (a) and (c), e.g. "--drop-text"
#   BENCH_NO_BUILD=1         use the existing target/release binaries, do not run cargo
#   BENCH_BIN_DIR=DIR        take tokenize and pack from DIR (implies BENCH_NO_BUILD=1)
#   BENCH_ALLOW_MISMATCH=1   keep going when wick's and Python's token counts differ
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_tokenize: error: $*" >&2; exit 1; }
say() { echo "bench_tokenize: $*" >&2; }

RUNS=${BENCH_RUNS:-5}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
CORPUS_MB=${BENCH_CORPUS_MB:-64}
read -r -a EXTRA <<< "${BENCH_TOKENIZE_ARGS:-}"
TOKJSON=testdata/tokenizers/gpt2/tokenizer.json
BIN=${BENCH_BIN_DIR:-target/release}
TOK=$BIN/tokenize
PACK=$BIN/pack
PY=.venv/bin/python

# --- binaries --------------------------------------------------------------------------------
if [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "cargo build --release -p tokenize -p pack"
  cargo build --release -p tokenize -p pack \
    || die "cargo build --release -p tokenize -p pack failed (see above)"
fi
for b in "$TOK" "$PACK"; do
  [ -x "$b" ] || die "$b not found; build it with: cargo build --release -p tokenize -p pack"
done

# --- python + corpus -------------------------------------------------------------------------
bash scripts/venv.sh || die "scripts/venv.sh failed (the venv needs tokenizers==0.23.3 and numpy)"
if [ -n "${BENCH_CORPUS:-}" ]; then
  CORPUS=$BENCH_CORPUS
  [ -s "$CORPUS" ] || die "BENCH_CORPUS=$CORPUS does not exist or is empty"
else
  CORPUS=bench-data/corpus.jsonl
  "$PY" scripts/make_bench_corpus.py "$CORPUS" --mb "$CORPUS_MB" || die "building the corpus failed"
fi
BYTES=$(stat -c %s "$CORPUS")
DOCS=$(grep -c '[^[:space:]]' "$CORPUS" || true)   # non-blank lines

mkdir -p bench-data
WORK=$(mktemp -d bench-data/tokenize-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/results.tsv   # kind <TAB> run <TAB> seconds <TAB> peak_rss_kb <TAB> tokens
: > "$RES"

source scripts/timing.sh

cores=$(nproc)
read -r load1 _ < /proc/loadavg
echo "== tokenize benchmark =="
echo "corpus:    $CORPUS ($BYTES bytes = $(awk "BEGIN{printf \"%.1f\", $BYTES/1e6}") MB, $DOCS docs)"
echo "tokenizer: $TOKJSON; runs: $RUNS; cores: $cores; load avg: $load1; timer: $TIMER"
echo "wick:      $TOK --tokenizer $TOKJSON -q ${EXTRA[*]:-} CORPUS [| $PACK --tokenizer $TOKJSON -q -o DIR]"
if awk "BEGIN{exit !($load1 > $cores * 0.5)}"; then
  echo "WARNING: load average $load1 on $cores cores: the machine is busy, numbers will be noisy"
fi
if [ -n "${RAYON_NUM_THREADS:-}${RAYON_RS_NUM_CPUS:-}" ]; then
  echo "WARNING: RAYON_NUM_THREADS='${RAYON_NUM_THREADS:-}' RAYON_RS_NUM_CPUS='${RAYON_RS_NUM_CPUS:-}' limit the thread pools"
fi

# --- warm-up + sanity: wick's token count -------------------------------------------------------
say "warm-up: counting wick's tokens (tokenize --drop-text | count)"
counts=$(
  set -o pipefail
  "$TOK" --tokenizer "$TOKJSON" -q --drop-text "$CORPUS" | "$PY" -c '
import json, sys
docs = tokens = 0
for line in sys.stdin:
    if line.strip():
        docs += 1
        tokens += len(json.loads(line)["ids"])
print(docs, tokens)'
) || die "'$TOK --tokenizer $TOKJSON --drop-text $CORPUS' failed (or did not write JSONL with \"ids\")"
read -r WICK_DOCS WICK_TOKENS <<< "$counts"
[ "$WICK_DOCS" = "$DOCS" ] \
  || die "wick tokenize wrote $WICK_DOCS documents for $DOCS input lines — is $TOK the finished tool?"

# --- the timed runs ------------------------------------------------------------------------------
run_wick() {  # $1 = run number
  local t=$WORK/t
  timed "$t" "$TOK" --tokenizer "$TOKJSON" -q "${EXTRA[@]}" "$CORPUS" > /dev/null \
    || die "wick tokenize failed ($(head -n 1 "$t"))"
  read -r s kb < <(timing "$t")
  printf 'wick\t%s\t%s\t%s\t%s\n' "$1" "$s" "$kb" "$WICK_TOKENS" >> "$RES"
  printf '  run %s  wick tokenize     %8.2f s  %7.1f MiB peak RSS\n' "$1" "$s" "$(awk "BEGIN{print $kb/1024}")"
}
run_hf() {
  local out
  out=$("$PY" scripts/bench_hf_tokenize.py --tokenizer "$TOKJSON" "$CORPUS") || die "bench_hf_tokenize.py failed"
  read -r s tot tokens < <("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["seconds"], d["total_seconds"], d["tokens"])' "$out")
  printf 'hf\t%s\t%s\t0\t%s\nhf_total\t%s\t%s\t0\t%s\n' "$1" "$s" "$tokens" "$1" "$tot" "$tokens" >> "$RES"
  printf '  run %s  HF encode_batch   %8.2f s  (%.2f s incl. load+parse)\n' "$1" "$s" "$tot"
  if [ "$tokens" != "$WICK_TOKENS" ] && [ "${BENCH_ALLOW_MISMATCH:-0}" != 1 ]; then
    die "token counts differ: wick $WICK_TOKENS, HF tokenizers $tokens (set BENCH_ALLOW_MISMATCH=1 to continue)"
  fi
}
run_pipe() {
  local t=$WORK/t out=$WORK/shards
  rm -rf "$out"
  timed "$t" bash -c 'set -euo pipefail
    tok=$1 pack=$2 tj=$3 corpus=$4 out=$5; shift 5
    "$tok" --tokenizer "$tj" -q "$@" "$corpus" | "$pack" --tokenizer "$tj" -q -o "$out" >/dev/null' \
    _ "$TOK" "$PACK" "$TOKJSON" "$CORPUS" "$out" "${EXTRA[@]}" \
    || die "tokenize | pack failed ($(head -n 1 "$t"))"
  [ -d "$out" ] && [ -n "$(ls -A "$out")" ] || die "pack -o $out produced no files"
  read -r s kb < <(timing "$t")
  printf 'pipe\t%s\t%s\t%s\t%s\n' "$1" "$s" "$kb" "$WICK_TOKENS" >> "$RES"
  printf '  run %s  tokenize | pack   %8.2f s  %7.1f MiB peak RSS (max of the two)  shards: %s\n' \
    "$1" "$s" "$(awk "BEGIN{print $kb/1024}")" "$(du -sh "$out" | cut -f1)"
  rm -rf "$out"
}

# With one core each: on 2 cores, tokenize alone already keeps both busy, so `tokenize | pack`
# mostly measures two processes sharing two cores. Giving each a core shows whether pack keeps
# up with tokenize's output, i.e. whether packing is the bottleneck.
run_wick1() {
  local t=$WORK/t
  timed "$t" "$TOK" --tokenizer "$TOKJSON" -q --threads 1 "${EXTRA[@]}" "$CORPUS" > /dev/null \
    || die "wick tokenize --threads 1 failed ($(head -n 1 "$t"))"
  read -r s kb < <(timing "$t")
  printf 'wick1\t%s\t%s\t%s\t%s\n' "$1" "$s" "$kb" "$WICK_TOKENS" >> "$RES"
  printf '  run %s  tokenize, 1 thread %7.2f s\n' "$1" "$s"
}
run_pipe1() {
  local t=$WORK/t out=$WORK/shards1
  rm -rf "$out"
  timed "$t" bash -c 'set -euo pipefail
    tok=$1 pack=$2 tj=$3 corpus=$4 out=$5; shift 5
    "$tok" --tokenizer "$tj" -q --threads 1 "$@" "$corpus" | RAYON_NUM_THREADS=1 "$pack" --tokenizer "$tj" -q -o "$out" >/dev/null' \
    _ "$TOK" "$PACK" "$TOKJSON" "$CORPUS" "$out" "${EXTRA[@]}" \
    || die "tokenize --threads 1 | pack failed ($(head -n 1 "$t"))"
  read -r s kb < <(timing "$t")
  printf 'pipe1\t%s\t%s\t%s\t%s\n' "$1" "$s" "$kb" "$WICK_TOKENS" >> "$RES"
  printf '  run %s  1 thread | pack   %8.2f s\n' "$1" "$s"
  rm -rf "$out"
}

order=(run_wick run_hf run_pipe run_wick1 run_pipe1)
for ((r = 1; r <= RUNS; r++)); do
  for ((k = 0; k < ${#order[@]}; k++)); do
    "${order[(r - 1 + k) % ${#order[@]}]}" "$r"
  done
done

# --- peak RSS vs input size --------------------------------------------------------------------
HALF=$WORK/half.jsonl
head -c $((BYTES / 2)) "$CORPUS" | sed '$d' > "$HALF"   # whole lines only
HALF_BYTES=$(stat -c %s "$HALF")
for ((r = 1; r <= 2; r++)); do
  timed "$WORK/t" "$TOK" --tokenizer "$TOKJSON" -q "${EXTRA[@]}" "$HALF" > /dev/null || die "wick tokenize (half corpus) failed"
  read -r s kb < <(timing "$WORK/t")
  printf 'wick_half\t%s\t%s\t%s\t0\n' "$r" "$s" "$kb" >> "$RES"
done

# --- summary ---------------------------------------------------------------------------------
"$PY" - "$RES" "$BYTES" "$HALF_BYTES" "$WICK_TOKENS" <<'EOF'
import statistics, sys
res, nbytes, half_bytes, wick_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = {}
for line in open(res):
    kind, run, s, kb, tokens = line.split("\t")
    rows.setdefault(kind, []).append((float(s), int(kb), int(tokens)))
med = lambda kind, i=0: statistics.median(r[i] for r in rows[kind])
mib = lambda kb: kb / 1024
hf_tokens = rows["hf"][0][2]

w, h, ht, p = med("wick"), med("hf"), med("hf_total"), med("pipe")
print()
print(f"== tokenize results: medians of {len(rows['wick'])} runs, {nbytes / 1e6:.1f} MB corpus ==")
agree = "agree" if hf_tokens == wick_tokens else f"DIFFER by {wick_tokens - hf_tokens:+d}"
print(f"tokens (incl. one EOS per doc): wick {wick_tokens}, HF tokenizers {hf_tokens} ({agree})")
fmt = "{:<32} {:8.2f} s  {:7.2f} MB/s  {:6.2f} M tokens/s"
print(fmt.format("wick tokenize", w, nbytes / w / 1e6, wick_tokens / w / 1e6)
      + f"  peak RSS {mib(med('wick', 1)):.1f} MiB")
print(fmt.format("HF encode_batch (encode only)", h, nbytes / h / 1e6, hf_tokens / h / 1e6))
print(fmt.format("HF (incl. load + JSON parse)", ht, nbytes / ht / 1e6, hf_tokens / ht / 1e6))
print(fmt.format("wick tokenize | pack", p, nbytes / p / 1e6, wick_tokens / p / 1e6)
      + f"  peak RSS {mib(med('pipe', 1)):.1f} MiB (max of the two)")
rss_half, rss_full = max(r[1] for r in rows["wick_half"]), max(r[1] for r in rows["wick"])
print(f"wick tokenize peak RSS: half corpus ({half_bytes / 1e6:.1f} MB) {mib(rss_half):.1f} MiB, "
      f"full corpus ({nbytes / 1e6:.1f} MB) {mib(rss_full):.1f} MiB (max over runs; "
      f"x{rss_full / rss_half:.2f} for x{nbytes / half_bytes:.2f} input)")
print()
print(f"tokenize vs HF tokenizers encode_batch: {h / w:.2f}x throughput (target >= 1.5x)"
      f"  [{ht / w:.2f}x vs HF incl. load + parse]")
print(f"tokenize|pack vs tokenize alone: {100 * w / p:.0f}% (target >= 90%)")
w1, p1 = med("wick1"), med("pipe1")
print(f"  with one core each (tokenize --threads 1 {w1:.2f} s; | pack on 1 thread {p1:.2f} s): "
      f"{100 * w1 / p1:.0f}%")
EOF
