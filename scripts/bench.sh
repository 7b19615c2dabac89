#!/usr/bin/env bash
# Entry point of `make bench`: prepares the Python venv, then runs every scripts/bench_*.sh in
# name order (add a benchmark by adding scripts/bench_<name>.sh). Stops at the first failure.
# Each script reads its own BENCH_* environment variables (e.g. BENCH_RUNS); see their headers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/venv.sh

shopt -s nullglob
benches=(scripts/bench_*.sh)
[ ${#benches[@]} -gt 0 ] || { echo "bench: no scripts/bench_*.sh found" >&2; exit 1; }
for b in "${benches[@]}"; do
  echo
  echo "##### $b #####"
  bash "$b" || { echo "bench: $b failed (exit $?)" >&2; exit 1; }
done
echo
echo "bench: all ${#benches[@]} benchmark script(s) done"
