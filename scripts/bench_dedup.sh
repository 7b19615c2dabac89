#!/usr/bin/env bash
# Benchmarks wick `dedup` (MinHash-LSH near-duplicate removal) against datasketch in Python.
#
#   bash scripts/bench_dedup.sh          (normally via `make bench` -> scripts/bench.sh)
#
# Corpora: testdata/dedup/songci.jsonl (21,333 Song ci, 344 of them near duplicates at Jaccard
# >= 0.8) and bench-data/dedup-songci-x3.jsonl (64k docs: songci plus two copies of it with 0-20
# deterministic character substitutions per poem, so the copies span Jaccard ~0.2-1.0; built by
# scripts/bench_datasketch_dedup.py make-bench-corpus). Both use char 5-gram shingles, 14 bands x 8
# rows (112 hashes), for both tools.
#
# Steps: build (cargo build --release -p dedup), make sure the venv and corpora exist, then
#   1. quality (untimed): wick `dedup --no-exact --removed R` and datasketch on each corpus, each
#      also with --verify; the truth is every pair with exact Jaccard >= 0.8 of the shingle sets,
#      found by an exact all-pairs set-similarity join in Python (prefix filtering, ~10 s on
#      songci, ~30 s on the 64k corpus); an ideal tool removes every document of a truth cluster
#      but the first. Prints each tool's precision and recall of removed documents against that.
#   2. BENCH_RUNS rounds, order rotating each round, per corpus:
#        target/release/dedup --no-exact -q --shingle char:5 --bands 14 --rows 8 CORPUS > /dev/null
#        scripts/bench_datasketch_dedup.py CORPUS --shingle char:5 --bands 14 --rows 8
#      wick: wall time (reads, parses, dedups, writes JSONL). datasketch: its own `seconds`,
#      which excludes reading/parsing the JSONL and writing anything (favours Python).
#      Prints the medians, docs/s and the ratio "near-dedup vs datasketch: X.XXx docs/s".
#   3. memory: BENCH_DEDUP_MEM_DOCS (1,000,000) short real documents (the 133k distinct lines
#      of testdata/*.jsonl and testdata/dedup/*.jsonl, cycled, each copy made unique by its own
#      counter token after every 3 words, or 3 characters in CJK lines, so that no two share a
#      shingle and every one is indexed; ~100 bytes each) in bench-data/; peak RSS of
#      `dedup --no-exact -q FILE` / documents = "peak RSS per indexed document", and the marginal
#      bytes per document against the first 1% of the file.
#
# Environment:
#   BENCH_RUNS=5                timed rounds
#   BENCH_NO_BUILD=1            use the existing target/release/dedup, do not run cargo
#   BENCH_BIN_DIR=DIR           take dedup from DIR (implies BENCH_NO_BUILD=1)
#   BENCH_DEDUP_ARGS=""         extra args for wick dedup in the timed runs
#   BENCH_DEDUP_MEM_DOCS=1000000  documents in the memory corpus
#   BENCH_DEDUP_PYTHON_ONLY=1   run only the Python side (datasketch timings and quality), no wick
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_dedup: error: $*" >&2; exit 1; }
say() { echo "bench_dedup: $*" >&2; }

RUNS=${BENCH_RUNS:-5}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
MEM_DOCS=${BENCH_DEDUP_MEM_DOCS:-1000000}
[[ "$MEM_DOCS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DEDUP_MEM_DOCS must be a positive integer, got '$MEM_DOCS'"
read -r -a EXTRA <<< "${BENCH_DEDUP_ARGS:-}"
PY_ONLY=${BENCH_DEDUP_PYTHON_ONLY:-0}
BIN=${BENCH_BIN_DIR:-target/release}
DEDUP=$BIN/dedup
PY=.venv/bin/python
PEER=scripts/bench_datasketch_dedup.py
NEAR=(--shingle char:5 --bands 14 --rows 8)

# --- binary (a missing one is reported where it is first needed, after the Python parts) -------
BUILD_FAILED=0
if [ "$PY_ONLY" != 1 ] && [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  say "cargo build --release -p dedup"
  cargo build --release -p dedup || BUILD_FAILED=1
fi
need_wick() {
  [ "$BUILD_FAILED" = 0 ] || die "cargo build --release -p dedup failed (see above); the Python parts above ran, the wick parts cannot"
  [ -x "$DEDUP" ] || die "$DEDUP not found: wick dedup is not built yet (cargo build --release -p dedup); the Python parts above ran, the wick parts cannot (BENCH_DEDUP_PYTHON_ONLY=1 runs only those)"
}

# --- python + corpora ------------------------------------------------------------------------
bash scripts/venv.sh || die "scripts/venv.sh failed (the venv needs datasketch; see scripts/requirements.txt)"
"$PY" -c 'import datasketch' 2>/dev/null || die "datasketch is not importable from $PY (scripts/requirements.txt)"
SONGCI=testdata/dedup/songci.jsonl
[ -s "$SONGCI" ] || die "$SONGCI missing (python3 scripts/make_dedup_testdata.py builds it)"
mkdir -p bench-data
X3=bench-data/dedup-songci-x3.jsonl
if [ ! -s "$X3" ] || [ "$X3" -ot "$PEER" ] || [ "$X3" -ot "$SONGCI" ]; then
  "$PY" "$PEER" make-bench-corpus "$SONGCI" "$X3" || die "building $X3 failed"
fi
CORPORA=("$SONGCI" "$X3")

WORK=$(mktemp -d bench-data/dedup-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/results.tsv   # kind <TAB> corpus# <TAB> run <TAB> seconds <TAB> peak_rss_kb <TAB> docs <TAB> removed
: > "$RES"
QUAL=$WORK/quality.jsonl
: > "$QUAL"

source scripts/timing.sh
json_field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

cores=$(nproc)
read -r load1 _ < /proc/loadavg
echo "== dedup (near-duplicate) benchmark =="
for c in "${CORPORA[@]}"; do
  echo "corpus:  $c ($(grep -c '[^[:space:]]' "$c") docs, $(stat -c %s "$c") bytes)"
done
echo "shingles ${NEAR[*]}; runs: $RUNS; cores: $cores; load avg: $load1; timer: $TIMER"
echo "peer:    datasketch $("$PY" -c 'import datasketch; print(datasketch.__version__)') MinHash(num_perm=112, seed=1) + MinHashLSH(params=(14, 8)), one core"
if awk "BEGIN{exit !($load1 > $cores * 0.5)}"; then
  echo "WARNING: load average $load1 on $cores cores: the machine is busy, numbers will be noisy"
fi

# --- 1. quality (untimed; also the warm-up) ----------------------------------------------------
say "quality: datasketch runs (untimed)"
for k in "${!CORPORA[@]}"; do
  c=${CORPORA[$k]}
  "$PY" "$PEER" "$c" "${NEAR[@]}" --removed-out "$WORK/peer$k.removed" > /dev/null || die "$PEER $c failed"
  "$PY" "$PEER" "$c" "${NEAR[@]}" --verify --removed-out "$WORK/peerv$k.removed" > /dev/null || die "$PEER --verify $c failed"
done
quality() {  # $1 = corpus index; tools as NAME=FILE
  local k=$1; shift
  say "quality: exact all-pairs Jaccard truth for ${CORPORA[$k]}"
  "$PY" "$PEER" quality "${CORPORA[$k]}" --shingle char:5 --threshold 0.8 "$@" >> "$QUAL" \
    || die "quality evaluation of ${CORPORA[$k]} failed"
}
print_quality() {
  "$PY" - "$QUAL" <<'EOF'
import json, sys
print()
print("== quality: removed documents vs the truth (exact Jaccard of char 5-gram sets >= 0.8; an ideal")
print("   keep-first tool removes every member of a truth cluster but the first) ==")
for line in open(sys.argv[1]):
    q = json.loads(line)
    print(f"{q['corpus']}: {q['docs']} docs; truth: {q['truth_pairs']} pairs, {q['truth_removed']} docs to remove "
          f"(exact all-pairs join in Python: {q['truth_seconds']:.1f} s)")
    for name, t in q["tools"].items():
        f = lambda v: "  n/a " if v is None else f"{v:6.4f}"  # noqa: E731
        print(f"  {name:<22} removed {t['removed']:6d}  precision {f(t['precision'])}  recall {f(t['recall'])}"
              f"  (removed doc within 0.8 of its dup_of: {f(t['dup_of_precision'])})"
              + (f"  [{t['unknown_ids']} unknown ids!]" if t["unknown_ids"] else ""))
EOF
}

if [ "$PY_ONLY" = 1 ]; then
  for k in "${!CORPORA[@]}"; do
    quality "$k" datasketch="$WORK/peer$k.removed" datasketch-verify="$WORK/peerv$k.removed"
  done
  print_quality
else
  if [ "$BUILD_FAILED" != 0 ] || [ ! -x "$DEDUP" ]; then
    for k in "${!CORPORA[@]}"; do
      quality "$k" datasketch="$WORK/peer$k.removed" datasketch-verify="$WORK/peerv$k.removed"
    done
    print_quality
  fi
  need_wick
  say "quality: wick dedup runs (untimed)"
  VERIFY=(--verify)
  if ! "$DEDUP" --help | grep -q -- '--verify'; then
    echo "NOTE: $DEDUP has no --verify option; its verified quality is not measured"
    VERIFY=()
  fi
  for k in "${!CORPORA[@]}"; do
    c=${CORPORA[$k]}
    docs=$(grep -c '[^[:space:]]' "$c")
    tools=()
    for v in "" "${VERIFY[@]}"; do
      tag=wick${v:+-verify}
      kept=$("$DEDUP" --no-exact -q "${NEAR[@]}" ${v:+"$v"} --removed "$WORK/$tag$k.removed" "$c" | wc -l) \
        || die "$DEDUP --no-exact ${NEAR[*]} $v --removed R $c failed"
      rem=$(wc -l < "$WORK/$tag$k.removed")
      [ $((kept + rem)) = "$docs" ] \
        || die "$DEDUP --no-exact $v --removed on $c: kept $kept + removed $rem != $docs input docs"
      tools+=("$tag=$WORK/$tag$k.removed")
    done
    quality "$k" "${tools[@]}" datasketch="$WORK/peer$k.removed" datasketch-verify="$WORK/peerv$k.removed"
  done
  print_quality
fi

# --- 2. the timed runs ---------------------------------------------------------------------------
run_wick() {  # $1 = run, $2 = corpus index
  local t=$WORK/t c=${CORPORA[$2]}
  timed "$t" "$DEDUP" --no-exact -q "${NEAR[@]}" "${EXTRA[@]}" "$c" > /dev/null \
    || die "wick dedup failed on $c ($(head -n 1 "$t"))"
  read -r s kb < <(timing "$t")
  printf 'wick\t%s\t%s\t%s\t%s\t0\t0\n' "$2" "$1" "$s" "$kb" >> "$RES"
  printf '  run %s  %-28s wick dedup   %8.2f s  %7.1f MiB peak RSS\n' "$1" "$(basename "$c")" "$s" "$(awk "BEGIN{print $kb/1024}")"
}
run_peer() {
  local t=$WORK/t c=${CORPORA[$2]} out s kb
  out=$(timed "$t" "$PY" "$PEER" "$c" "${NEAR[@]}") || die "$PEER $c failed"
  read -r s kb < <(timing "$t")
  local secs docs removed
  secs=$(json_field "$out" seconds); docs=$(json_field "$out" docs); removed=$(json_field "$out" removed)
  printf 'peer\t%s\t%s\t%s\t%s\t%s\t%s\npeer_wall\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$2" "$1" "$secs" "$kb" "$docs" "$removed" "$2" "$1" "$s" "$kb" "$docs" "$removed" >> "$RES"
  printf '  run %s  %-28s datasketch   %8.2f s  (%.2f s process wall, %.1f MiB peak RSS)\n' \
    "$1" "$(basename "$c")" "$secs" "$s" "$(awk "BEGIN{print $kb/1024}")"
}
order=(run_wick run_peer)
[ "$PY_ONLY" = 1 ] && order=(run_peer)
echo
echo "== timed runs =="
for ((r = 1; r <= RUNS; r++)); do
  for k in "${!CORPORA[@]}"; do
    for ((j = 0; j < ${#order[@]}; j++)); do
      "${order[(r - 1 + j) % ${#order[@]}]}" "$r" "$k"
    done
  done
done

# --- 3. memory -----------------------------------------------------------------------------------
MEMNOTE=$WORK/mem.txt
: > "$MEMNOTE"
if [ "$PY_ONLY" != 1 ]; then
  MEM=bench-data/dedup-mem-${MEM_DOCS}.jsonl
  if [ ! -s "$MEM" ] || [ "$MEM" -ot "$PEER" ]; then
    "$PY" "$PEER" make-memory-corpus "$MEM" --docs "$MEM_DOCS" testdata/*.jsonl testdata/dedup/*.jsonl \
      || die "building $MEM failed"
  fi
  SMALL=$WORK/mem-small.jsonl
  SMALL_DOCS=$((MEM_DOCS / 100 > 0 ? MEM_DOCS / 100 : 1))
  head -n "$SMALL_DOCS" "$MEM" > "$SMALL"
  say "memory: dedup --no-exact -q on $MEM ($MEM_DOCS docs) and on its first $SMALL_DOCS"
  for f in "$MEM" "$SMALL"; do
    kept=$(timed "$WORK/t" "$DEDUP" --no-exact -q "$f" | wc -l) \
      || die "$DEDUP --no-exact -q $f failed ($(head -n 1 "$WORK/t"))"
    read -r s kb < <(timing "$WORK/t")
    printf '%s %s %s %s\n' "$(grep -c '[^[:space:]]' "$f")" "$kept" "$kb" "$s" >> "$MEMNOTE"
  done
fi

# --- summary ---------------------------------------------------------------------------------
"$PY" - "$RES" "$MEMNOTE" "$PY_ONLY" "${CORPORA[@]}" <<'EOF'
import statistics, sys
res, memnote, py_only, corpora = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
rows = {}
for line in open(res):
    kind, k, run, s, kb, docs, removed = line.rstrip("\n").split("\t")
    rows.setdefault((kind, int(k)), []).append((float(s), int(kb), int(docs), int(removed)))
med = lambda key, i=0: statistics.median(r[i] for r in rows[key])  # noqa: E731
runs = len(rows[("peer", 0)])
print()
print(f"== dedup results: medians of {runs} runs ==")
ratios = []
for k, c in enumerate(corpora):
    docs = rows[("peer", k)][0][2]
    p, pw = med(("peer", k)), med(("peer_wall", k))
    print(f"{c} ({docs} docs):")
    if not py_only:
        w = med(("wick", k))
        print(f"  wick dedup --no-exact       {w:8.2f} s  {docs / w:10.0f} docs/s"
              f"  peak RSS {med(('wick', k), 1) / 1024:.1f} MiB  (wall: read + dedup + write)")
    print(f"  datasketch MinHash+LSH      {p:8.2f} s  {docs / p:10.0f} docs/s"
          f"  removed {rows[('peer', k)][0][3]}  (shingle+MinHash+LSH only; process wall {pw:.2f} s,"
          f" peak RSS {med(('peer_wall', k), 1) / 1024:.1f} MiB)")
    if not py_only:
        ratios.append((c, docs, (docs / w) / (docs / p), (docs / w) / (docs / pw)))
print()
for c, docs, r, rw in ratios:
    print(f"near-dedup vs datasketch: {r:.2f}x docs/s (target >= 20x)  [{c}, {docs} docs; "
          f"{rw:.2f}x vs datasketch's process wall time]")
mem = [line.split() for line in open(memnote) if line.strip()]
if mem:
    (n, kept, kb, s), (n2, kept2, kb2, _) = [(int(a), int(b), int(c), float(d)) for a, b, c, d in mem]
    per_doc = kb * 1024 / n
    marginal = (kb - kb2) * 1024 / (n - n2) if n > n2 else float("nan")
    print(f"peak RSS per indexed document: {per_doc:.0f} bytes (target < 200)  "
          f"[{n} docs, {kept} kept, peak RSS {kb / 1024:.1f} MiB, {s:.1f} s; marginal "
          f"{marginal:.0f} bytes/doc against {kb2 / 1024:.1f} MiB for the first {n2} docs]")
    if kept != n:
        print(f"  NOTE: dedup removed {n - kept} of the memory corpus's documents; they were meant to be distinct")
EOF
