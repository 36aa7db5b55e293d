#!/usr/bin/env bash
# The GPU check, in under 8 minutes on one GPU: the Triton kernels' correctness at the
# paper's shapes against float64 CPU references and their GB/s beside torch.relu and
# max_pool2d (benchmarks/bench_triton.py), one store-fed epoch of the paper's method on
# CIFAR-10 (augmentation on the device; images/s and peak memory), the bench table (eager
# and compiled, bf16, channels_last, torchvision beside), and correctness of the model on
# the device against float64 CPU references (benchmarks/gpu_smoke.py). Run from the checkout:
#
#   bash benchmarks/gpu_check.sh [CIFAR10_TARBALL] [OUT_DIR]
#
# It needs only PyTorch (with its Triton), torchvision and the project's pure-Python
# dependencies (no install: PYTHONPATH=src). Each stage has its own time limit; a stage that
# fails or runs out of time is reported and the next one runs; the summary table at the end
# gives each stage's status and seconds (exit code 1 if any failed). SKIP_SMOKE=1 leaves out
# the last stage, SKIP_TRITON=1 the first. Output: OUT_DIR/{triton,prepare,train,bench,
# smoke}.txt; docs/benchmarks.md has an H200's.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-gpu-data/cifar10-jpeg.tar.gz}
OUT=${2:-${OUT:-/tmp/gpu_check}}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
t0=$(date +%s)
SUMMARY=()
FAILED=0

# stage NAME LIMIT_S LOG COMMAND...: runs COMMAND under a time limit, its output shown and
# kept in LOG (QUIET=1: only the last 3 lines shown); records the status, never exits.
stage() {
  local name=$1 limit=$2 log=$3 start rc status
  shift 3
  start=$(date +%s)
  echo "== $name ($((start - t0)) s in)"
  set +e
  if [ "${QUIET:-0}" = 1 ]; then
    timeout "$limit" "$@" >"$log" 2>&1
    rc=$?
    tail -3 "$log"
  else
    timeout "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  fi
  set -e
  case $rc in
    0) status=ok ;;
    124) status="TIMED OUT (${limit} s)" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  [ "$rc" = 0 ] || FAILED=1
  [ "$rc" = 0 ] || echo "!! $name: $status, log in $log"
  SUMMARY+=("$(printf '%-68s %-22s %5d' "$name" "$status" $(($(date +%s) - start)))")
}

stage "machine" 60 "$OUT/machine.txt" bash -c \
  "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true;
   $PY -c \"import torch, torchvision, triton; print('torch', torch.__version__,
   'torchvision', torchvision.__version__, 'triton', triton.__version__)\""

if [ "${SKIP_TRITON:-0}" != 1 ]; then
  stage "Triton kernels: float64 checks and GB/s (bench_triton.py)" 150 "$OUT/triton.txt" \
    $PY benchmarks/bench_triton.py --batch 256 --check-samples 2
fi

QUIET=1 stage "pack CIFAR-10 at 256 (alexnet prepare)" 120 "$OUT/prepare.txt" \
  $PY -m alexnet prepare "$DATA" "$OUT/store" --size 256 --workers 16 --force

stage "one epoch of --preset paper in bf16 (as the bench below), store-fed, augmentation on the device" 150 "$OUT/train.txt" \
  $PY -m alexnet train --data "$OUT/store" --preset paper --epochs 1 --batch-size 256 \
  --amp bf16 --augment-on device --device cuda --out "$OUT/run" --overwrite --quiet

stage "bench: eager and compiled, bf16, channels_last, torchvision beside" 180 \
  "$OUT/bench.txt" $PY -m alexnet bench --device cuda --batch-size 256 --steps 10 --warmup 3 \
  --rounds 2 --amp bf16 --formats channels_last --compile

if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  stage "correctness on the device (benchmarks/gpu_smoke.py)" 120 "$OUT/smoke.txt" \
    $PY benchmarks/gpu_smoke.py
fi

echo "== summary ($(($(date +%s) - t0)) s in all)"
printf '%-68s %-22s %5s\n' "stage" "status" "s"
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
