#!/usr/bin/env bash
# The GPU check, in under 8 minutes on one GPU: one store-fed epoch of the paper's method on
# CIFAR-10 (augmentation on the device; images/s and peak memory), the bench table (eager
# and compiled, bf16, channels_last, torchvision beside), and correctness on the device
# against float64 CPU references. Run from the checkout:
#
#   bash benchmarks/gpu_check.sh [CIFAR10_TARBALL] [OUT_DIR]
#
# It needs only PyTorch, torchvision and the project's pure-Python dependencies (no install:
# PYTHONPATH=src). Each stage has its own time limit; SKIP_SMOKE=1 leaves out the last one.
# Output: OUT_DIR/{prepare,train,bench,smoke}.txt; docs/benchmarks.md has an H200's.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-gpu-data/cifar10-jpeg.tar.gz}
OUT=${2:-${OUT:-/tmp/gpu_check}}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
t0=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

stage "pack CIFAR-10 at 256 (alexnet prepare)"
timeout 120 $PY -m alexnet prepare "$DATA" "$OUT/store" --size 256 --workers 16 --force \
  > "$OUT/prepare.txt" 2>&1
tail -3 "$OUT/prepare.txt"

stage "one epoch of --preset paper, store-fed, augmentation on the device"
timeout 150 $PY -m alexnet train --data "$OUT/store" --preset paper --epochs 1 --batch-size 256 \
  --augment-on device --device cuda --out "$OUT/run" --overwrite --quiet 2>&1 | tee "$OUT/train.txt"

stage "bench: eager and compiled, bf16, channels_last, torchvision beside"
timeout 180 $PY -m alexnet bench --device cuda --batch-size 256 --steps 10 --warmup 3 --rounds 2 \
  --amp bf16 --formats channels_last --compile 2>&1 | tee "$OUT/bench.txt"

if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  stage "correctness on the device (benchmarks/gpu_smoke.py)"
  timeout 120 $PY benchmarks/gpu_smoke.py 2>&1 | tee "$OUT/smoke.txt"
fi
stage "done"
