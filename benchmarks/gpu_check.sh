#!/usr/bin/env bash
# The GPU check: correctness on the device, the bench table, and one store-fed epoch of the
# paper's method on CIFAR-10, in under 8 minutes on one GPU. Run from the checkout:
#
#   bash benchmarks/gpu_check.sh [CIFAR10_TARBALL] [OUT_DIR]
#
# It needs only PyTorch, torchvision and the project's pure-Python dependencies (no install:
# PYTHONPATH=src). Output: OUT_DIR/{smoke,bench,prepare,train}.txt and a summary on stdout.
# docs/benchmarks.md has the table it printed on an H200.
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
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"

stage "correctness on the device (benchmarks/gpu_smoke.py)"
timeout 240 $PY benchmarks/gpu_smoke.py 2>&1 | tee "$OUT/smoke.txt"

stage "bench: eager and compiled, bf16, channels_last, torchvision beside"
timeout 300 $PY -m alexnet bench --device cuda --batch-size 256 --steps 10 --warmup 3 --rounds 3 \
  --amp bf16 --formats channels_last --compile 2>&1 | tee "$OUT/bench.txt"

stage "pack CIFAR-10 at 256 (alexnet prepare)"
timeout 240 $PY -m alexnet prepare "$DATA" "$OUT/store" --size 256 --workers 16 --force \
  2>&1 | tail -4 | tee "$OUT/prepare.txt"

stage "one epoch of --preset paper, store-fed, augmentation on the device"
timeout 240 $PY -m alexnet train --data "$OUT/store" --preset paper --epochs 1 --batch-size 256 \
  --augment-on device --device cuda --out "$OUT/run" --overwrite --quiet 2>&1 | tee "$OUT/train.txt"

stage "done"
