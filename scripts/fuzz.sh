#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS seconds each, one after
# the other, and prints per target the seconds run, executions, final coverage and what it
# found (docs/fuzzing.md). Not part of make test or CI.
#
#   FUZZ_SECONDS=60      seconds per target
#   FUZZ_TARGETS="..."   the targets to run (default: all, in the order below)
#
# cargo-fuzz is installed from crates.io when missing. It passes nightly-only flags to rustc;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take them, and --sanitizer none needs no
# AddressSanitizer runtime (the targets are safe Rust over safe-Rust libraries, apart from
# memory maps, so ASan would add little). Panics, aborts, allocations past -rss_limit_mb and
# hangs past -timeout are what libFuzzer reports; each lands in fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"jsonl shards model_folder adapter_folder chat_template metrics_log"}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

# Each execution makes a temporary folder; memory-backed ones keep fsync and unlink cheap.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

# Per target: largest input (bytes), dictionary, seconds after which one input is a hang.
max_len() {
    case $1 in
        jsonl) echo 4096 ;;
        shards) echo 16384 ;;
        model_folder) echo 131072 ;;   # the real test models (92-120 KB) are seeds
        adapter_folder) echo 49152 ;;  # lora-rslora's 36 KB weights
        chat_template) echo 4096 ;;
        metrics_log) echo 16384 ;;
    esac
}
dict() {
    case $1 in
        shards) echo fuzz/dicts/shards.dict ;;
        chat_template) echo fuzz/dicts/jinja.dict ;;
        *) echo fuzz/dicts/json.dict ;;
    esac
}
TIMEOUT=30

# Seeds from testdata/ too large to commit, joined as the targets read them (fuzz/src/lib.rs).
SEP=$'\n--wick-part--\n'
seed_from_testdata() {
    local corpus=fuzz/corpus/$1
    case $1 in
        model_folder)
            for m in testdata/models/*/; do
                [ -f "$m/model.safetensors" ] || continue
                { cat "$m/config.json"; printf '%s' "$SEP"; cat "$m/model.safetensors"; } \
                    > "$corpus/testdata-$(basename "$m")"
            done ;;
        adapter_folder)
            for m in testdata/models/lora-rslora/; do
                { cat "$m/adapter_config.json"; printf '%s' "$SEP"; cat "$m/adapter_model.safetensors"; } \
                    > "$corpus/testdata-$(basename "$m")"
            done ;;
        jsonl)
            head -c 4000 testdata/sft/train.jsonl > "$corpus/testdata-sft"
            head -c 4000 testdata/pref/train.jsonl > "$corpus/testdata-pref" ;;
        metrics_log)
            for r in testdata/fixtures/plot/runs/*/; do
                head -c 16000 "$r/metrics.jsonl" > "$corpus/testdata-$(basename "$r")"
            done ;;
    esac
}

echo "fuzz: building the targets (cargo fuzz build --sanitizer none; the first build takes a while)"
(cd fuzz && cargo fuzz build --sanitizer none)

mkdir -p fuzz/logs
SUMMARY=()
FOUND=0
for t in $TARGETS; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    seed_from_testdata "$t"
    log=fuzz/logs/$t.log
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    echo "fuzz: $t for ${SECS}s (log: $log)"
    start=$(date +%s)
    set +e
    (cd fuzz && cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -timeout="$TIMEOUT" -dict="$ROOT/$(dict "$t")" -print_final_stats=1) > "$log" 2>&1
    rc=$?
    set -e
    end=$(date +%s)
    # libFuzzer's own count of seconds (without cargo's check that the build is fresh).
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -n 1)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    new=$(( $(ls "fuzz/artifacts/$t" | wc -l) - before ))
    if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
        FOUND=1
        what=$(grep -m 1 -o 'ERROR: libFuzzer: [a-z-]*\|panicked at [^:]*:[0-9]*\|memory allocation of [0-9]* bytes failed' "$log" || true)
        unit=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's|.*/||')
        found="${unit:-$new new} in fuzz/artifacts/$t/ (exit $rc${what:+; $what})"
    else
        found="nothing"
    fi
    line=$(printf '%-15s %5ss  %10s execs  %-22s peak %5s MB  found: %s' \
        "$t" "${secs:-$((end - start))}" "${execs:-?}" "${cov:-cov: ?}" "${rss:-?}" "$found")
    echo "$line"
    SUMMARY+=("$line")
done

echo
echo "fuzz summary (FUZZ_SECONDS=$SECS per target; logs in fuzz/logs/, grown corpora in fuzz/corpus/):"
printf '%s\n' "${SUMMARY[@]}"
if [ "$FOUND" -ne 0 ]; then
    echo "fuzz: findings above; reproduce one with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none <target> artifacts/<target>/<file>"
    exit 1
fi
