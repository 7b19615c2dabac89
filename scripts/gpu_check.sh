#!/usr/bin/env bash
# The CUDA build on a machine with an NVIDIA GPU: trains the small preset (scripts/presets/
# small.json, batch 8 x seq 256) for GPU_CHECK_STEPS steps on the GPU in f32 and in bf16
# (--precision bf16), and the first GPU_CHECK_CPU_STEPS steps on the CPU, from the same seed on
# the same data; checks the GPU runs' first losses against the CPU's, that the GPU runs learn,
# and prints tokens/s and MFU against the GPU's peak. Expected to take a few minutes on an H100
# after the build (the build itself is minutes more: candle's CUDA kernels compile first); not
# yet timed on a GPU. On the CPU, with a stand-in for nvidia-smi and --device cuda mapped to
# WICK_REFERENCE_OPS=1, 40 steps per run took 7 minutes on 2 cores.
#
#   bash scripts/gpu_check.sh                     (build, then check; exit 0 = PASS)
#   GPU_CHECK_BIN=target/cuda/release bash scripts/gpu_check.sh   (binaries already built)
#
# A CUDA build loads the CUDA libraries of the toolkit it was built with (libcublas, libcurand;
# make cuda's PyPI toolchain is CUDA 13: libcublas.so.13, and a driver for CUDA 13, R580 or
# later), even for --device cpu; a build with the machine's own nvcc links that version.
#
# Run it once, under a time limit if you like (`timeout 900 bash scripts/gpu_check.sh`); it
# prints PASS or FAIL per check and a summary, and exits 1 on any FAIL.
#
# Steps:
#   1. Binaries: GPU_CHECK_BIN=DIR (train, tokenize, pack, built with --features train/cuda),
#      or built now: `cargo build --release --target-dir target/cuda -p train -p tokenize -p pack
#      --features train/cuda` with the machine's nvcc (CUDA_COMPUTE_CAP from nvidia-smi), or,
#      without nvcc, `make cuda`'s build-only toolchain (it pip-installs nvcc from PyPI).
#   2. Data: bench-data/train/shards as scripts/bench_train.sh makes it (a 4096-token BPE
#      tokenizer on testdata/english.jsonl, val fraction 0.15), reused when it is there.
#   3. Runs, each `train --config scripts/presets/small.json --batch-size 8 --seq-len 256
#      --eval-interval 0 --seed 1337` into bench-data/gpu-check/<run>/:
#        cuda-f32   GPU_CHECK_STEPS steps on --device cuda
#        cuda-bf16  the same with --precision bf16
#        cpu-f32    GPU_CHECK_CPU_STEPS steps on --device cpu (the fused CPU kernels)
#   4. Checks:
#        the first GPU_CHECK_CPU_STEPS losses of cuda-f32 within GPU_CHECK_TOL_F32 (absolute, in
#        nats) of cpu-f32's: the same math in another summation order (cuBLAS's f32 GEMMs are
#        true f32, not TF32), whose drift over a few AdamW steps is ~1e-4 on the CPU
#        (crates/train/tests/device_path.rs measures the same comparison between the CPU's two
#        paths);
#        cuda-bf16's within GPU_CHECK_TOL_BF16 of cpu-f32's: products on bf16 operands;
#        each GPU run learns: its last 20 steps' mean loss at least 1 nat below its first loss.
#   5. Speed: tokens/s = the median of metrics.jsonl's tokens_per_s over the steps after the
#      first 10; MFU = FLOPs/step x steps/s / the GPU's dense peak, with
#        FLOPs/step = 6*N*B*T + 12*layers*heads*head_dim*T*B*T, N = weights of every matmul
#        (q/k/v/o, gate/up/down, lm_head; not the embedding lookup, not the norms)
#      (scripts/bench_train.sh's formula); peaks from nvidia-smi's name (H100 SXM/PCIe/NVL,
#      H200, H200 NVL, A100): f32 against the FP32 (CUDA core) peak, bf16 against the BF16
#      tensor-core peak; GPU_CHECK_PEAK_F32 / GPU_CHECK_PEAK_BF16 (TFLOP/s) for another GPU.
#
# Environment:
#   GPU_CHECK_BIN=DIR          take train/tokenize/pack from DIR (a CUDA build), do not build
#   GPU_CHECK_DEVICE=cuda      the --device of the GPU runs (cuda:N for another GPU)
#   GPU_CHECK_STEPS=300        steps of each GPU run
#   GPU_CHECK_CPU_STEPS=8      steps of the CPU run, and the steps compared
#   GPU_CHECK_TOL_F32=0.005    |loss cuda-f32 - loss cpu-f32| allowed over those steps
#   GPU_CHECK_TOL_BF16=0.05    |loss cuda-bf16 - loss cpu-f32| allowed over those steps
#   GPU_CHECK_PEAK_F32, GPU_CHECK_PEAK_BF16   dense peaks in TFLOP/s (else from the GPU's name)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu_check: error: $*" >&2; exit 2; }
say() { echo "gpu_check: $*" >&2; }

DEVICE=${GPU_CHECK_DEVICE:-cuda}
STEPS=${GPU_CHECK_STEPS:-300}
CPU_STEPS=${GPU_CHECK_CPU_STEPS:-8}
TOL_F32=${GPU_CHECK_TOL_F32:-0.005}
TOL_BF16=${GPU_CHECK_TOL_BF16:-0.05}
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge 40 ] || die "GPU_CHECK_STEPS must be at least 40"
[[ "$CPU_STEPS" =~ ^[1-9][0-9]*$ ]] && [ "$CPU_STEPS" -le "$STEPS" ] \
  || die "GPU_CHECK_CPU_STEPS must be between 1 and GPU_CHECK_STEPS"
command -v python3 > /dev/null || die "python3 is needed to read the metrics"
command -v nvidia-smi > /dev/null || die "no nvidia-smi: this check is for a machine with an NVIDIA GPU"
ordinal=${DEVICE#cuda}; ordinal=${ordinal#:}; ordinal=${ordinal:-0}
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader -i "$ordinal" | head -n 1) \
  || die "nvidia-smi cannot see GPU $ordinal"
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i "$ordinal" 2>/dev/null | head -n 1 | tr -d '.' || true)

# --- binaries ------------------------------------------------------------------------------------
if [ -n "${GPU_CHECK_BIN:-}" ]; then
  BIN=$GPU_CHECK_BIN
else
  BIN=target/cuda/release
  export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$CAP}
  if command -v nvcc > /dev/null; then
    say "building train, tokenize, pack with --features train/cuda (nvcc $(nvcc --version | tail -n 1); compute capability ${CUDA_COMPUTE_CAP:-?})"
    cargo build --release --target-dir target/cuda -p train -p tokenize -p pack --features train/cuda \
      || die "the CUDA build failed (see above)"
  else
    say "no nvcc on PATH: building with make cuda's toolchain from PyPI"
    make cuda || die "make cuda failed (see above)"
    # shellcheck disable=SC1091
    . .cuda-build/env
    export CUDA_COMPUTE_CAP=${CAP:-$CUDA_COMPUTE_CAP}
    cargo build --release --target-dir target/cuda -p tokenize -p pack || die "building tokenize and pack failed"
  fi
fi
for b in train tokenize pack; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found"
done

# --- data ----------------------------------------------------------------------------------------
DATA=bench-data/train
SHARDS=$DATA/shards
CORPUS=testdata/english.jsonl
if [ ! -f "$SHARDS/manifest.json" ]; then
  say "making $SHARDS from $CORPUS (vocab 4096, val fraction 0.15, as scripts/bench_train.sh)"
  rm -rf "$DATA/tok" "$SHARDS"
  mkdir -p "$DATA/tok"
  "$BIN/tokenize" train --vocab-size 4096 -q -o "$DATA/tok/" "$CORPUS" || die "tokenize train failed"
  ( set -o pipefail
    "$BIN/tokenize" --tokenizer "$DATA/tok" -q "$CORPUS" \
      | "$BIN/pack" --tokenizer "$DATA/tok" --val-fraction 0.15 -q -o "$SHARDS" ) \
    || die "tokenize | pack failed"
fi

# --- runs ----------------------------------------------------------------------------------------
WORK=bench-data/gpu-check
mkdir -p "$WORK"
run() {  # name steps extra-args...
  local name=$1 steps=$2; shift 2
  rm -rf "${WORK:?}/$name"
  say "train $name: $steps steps $*"
  local t0=$SECONDS
  "$BIN/train" --task pretrain --data "$SHARDS" --config scripts/presets/small.json \
    --batch-size 8 --seq-len 256 --max-steps "$steps" --eval-interval 0 --seed 1337 \
    --quiet -o "$WORK/$name" "$@" > "$WORK/$name.log" 2>&1 \
    || { tail -n 20 "$WORK/$name.log" >&2; die "train $name failed"; }
  say "  $name: $((SECONDS - t0)) s"
}
run cuda-f32 "$STEPS" --device "$DEVICE"
run cuda-bf16 "$STEPS" --device "$DEVICE" --precision bf16
run cpu-f32 "$CPU_STEPS" --device cpu

# --- checks and speed ----------------------------------------------------------------------------
python3 - "$WORK" "$GPU" "$CPU_STEPS" "$TOL_F32" "$TOL_BF16" \
  "${GPU_CHECK_PEAK_F32:-}" "${GPU_CHECK_PEAK_BF16:-}" <<'EOF'
import json, statistics, sys
work, gpu, n, tol32, tol16, peak32, peak16 = sys.argv[1:]
n, tol32, tol16 = int(n), float(tol32), float(tol16)

def metrics(run):
    lines = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl") if l.strip()]
    return [l for l in lines if "loss" in l]

runs = {r: metrics(r) for r in ("cuda-f32", "cuda-bf16", "cpu-f32")}
config = json.load(open(f"{work}/cuda-f32/config.json"))

# Dense peaks in TFLOP/s, (FP32 on CUDA cores, BF16 on tensor cores), from NVIDIA's datasheets.
PEAKS = [
    ("H200 NVL", (60.0, 835.5)), ("H200", (66.9, 989.4)),
    ("H100 NVL", (60.0, 835.5)), ("H100 PCIe", (51.2, 756.5)), ("H100", (66.9, 989.4)),
    ("A100", (19.5, 312.0)),
]
peak = next((p for name, p in PEAKS if name.lower() in gpu.lower()), None)
if peak32 and peak16:
    peak = (float(peak32), float(peak16))

h, i, L = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
nh = config["num_attention_heads"]
nkv = config.get("num_key_value_heads", nh)
hd = config.get("head_dim", h // nh)
V = config["vocab_size"]
N = L * (h * nh * hd * 2 + h * nkv * hd * 2 + 3 * h * i) + V * h
B, T = 8, 256
flops = 6 * N * B * T + 12 * L * nh * hd * T * B * T

ok = True
def check(what, good, detail):
    global ok
    ok &= good
    print(f"{'PASS' if good else 'FAIL'}  {what}: {detail}")

print(f"== gpu_check on {gpu}: small preset, batch {B} x seq {T}, {N:,} matmul weights, "
      f"{flops / 1e9:.1f} GFLOP/step ==")
cpu = [l["loss"] for l in runs["cpu-f32"]][:n]
print("first losses:")
for k in range(len(cpu)):
    print(f"  step {k + 1:>3}  cpu-f32 {cpu[k]:.5f}  cuda-f32 {runs['cuda-f32'][k]['loss']:.5f}"
          f"  cuda-bf16 {runs['cuda-bf16'][k]['loss']:.5f}")
for run, tol in (("cuda-f32", tol32), ("cuda-bf16", tol16)):
    gpu_l = [l["loss"] for l in runs[run]][:n]
    gap = max(abs(a - b) for a, b in zip(gpu_l, cpu))
    check(f"{run} vs cpu-f32, first {len(cpu)} losses", gap <= tol, f"largest gap {gap:.2e} (tolerance {tol:g})")
for run in ("cuda-f32", "cuda-bf16"):
    loss = [l["loss"] for l in runs[run]]
    last = statistics.mean(loss[-20:])
    check(f"{run} learns", last <= loss[0] - 1.0,
          f"loss {loss[0]:.3f} at step 1, {last:.3f} over the last 20 of {len(loss)} steps")
print("speed (median over the steps after the first 10):")
for run, k in (("cuda-f32", 0), ("cuda-bf16", 1), ("cpu-f32", None)):
    tps = [l["tokens_per_s"] for l in runs[run][10:]] or [l["tokens_per_s"] for l in runs[run]]
    t = statistics.median(tps)
    tflops = flops * t / (B * T) / 1e12
    mfu = ""
    if k is not None:
        mfu = (f", MFU {100 * tflops / peak[k]:.1f}% of {peak[k]:g} TFLOP/s "
               f"({'FP32' if k == 0 else 'BF16 tensor-core'} dense peak)") if peak else \
              ", MFU n/a (unknown GPU: set GPU_CHECK_PEAK_F32 and GPU_CHECK_PEAK_BF16)"
    print(f"  {run:<9} {t:12,.0f} tokens/s  {tflops:8.2f} TFLOP/s{mfu}")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
