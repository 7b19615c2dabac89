#!/usr/bin/env bash
# Build-only CUDA 13.0 toolchain from PyPI + stub libs, for candle 0.11.1 `cuda` on a GPU-less box.
# Usage: scripts/cuda-build-env.sh [DIR]   (then eval the printed export line; cargo fetch first)
# `make cuda` runs it into .cuda-build/ and builds the model tools with --features cuda.
# Only for building here: real GPU machines have the driver and CUDA libraries; nothing here runs a kernel.
set -euo pipefail
D=${1:-$PWD/.cuda-build}; V=$D/venv; R=$D/cuda-root
python3 -m venv "$V"
"$V/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
N=$("$V/bin/python" -c 'import nvidia,os;print(os.path.join(nvidia.__path__[0],"cu13"))')
mkdir -p "$R/lib"
for d in bin include nvvm; do ln -sfn "$N/$d" "$R/$d"; done
ln -sf "$N/lib/libcudart.so.13" "$R/lib/libcudart.so"
# link-time stubs (real libs come from the GPU machine at run time)
CUDARC=$(ls -d ${CARGO_HOME:-$HOME/.cargo}/registry/src/*/cudarc-0.19.10/src | head -1)
stub() { # name soname-suffix sys-dir regex
  grep -ohE "^pub unsafe fn $4[A-Za-z0-9_]*" "$CUDARC/$3/sys/mod.rs" | sort -u | awk '{print "int "$4"(void){return 0;}"}' > "$R/lib/$1.c"
  gcc -shared -fPIC -o "$R/lib/$1.so" -Wl,-soname,"$1.so.$2" "$R/lib/$1.c"
}
stub libcuda 1 driver 'cu[A-Z]'
stub libcublas 13 cublas 'cublas'
stub libcublasLt 13 cublaslt 'cublasLt'
stub libcurand 10 curand 'curand'
stub libnvrtc 13 nvrtc 'nvrtc'
echo "export PATH=$R/bin:\$PATH CUDA_ROOT=$R CUDA_COMPUTE_CAP=90"
