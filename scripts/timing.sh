# Sourced by the scripts/bench_*.sh benchmarks (its name keeps scripts/bench.sh from running it).
# `timed OUTFILE CMD...` runs CMD and writes "wall_seconds peak_rss_kb" to OUTFILE (GNU time,
# else a Python fallback that needs $PY); `timing OUTFILE` reads them back; $TIMER says which.
if /usr/bin/time -f '%e %M' -o /dev/null true >/dev/null 2>&1; then
  TIMER="GNU /usr/bin/time"
  timed() { local out=$1; shift; /usr/bin/time -f '%e %M' -o "$out" "$@"; }
else
  TIMER="python resource wrapper"
  timed() {
    local out=$1; shift
    "$PY" -c '
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t
with open(sys.argv[1], "w") as f:
    f.write("%.3f %d\n" % (wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)' "$out" "$@"
  }
fi
# GNU time prefixes "Command exited with non-zero status N" on failure; the numbers are last.
timing() { tail -n 1 "$1"; }
