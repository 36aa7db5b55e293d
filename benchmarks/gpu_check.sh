#!/usr/bin/env bash
# The GPU check, in under 8 minutes on one GPU, in this order (the most needed first):
#   1. the Triton kernels' correctness at the paper's shapes against float64 CPU references,
#      and their GB/s beside torch.relu and max_pool2d (benchmarks/bench_triton.py);
#   2. CIFAR-10 packed at 256, and two store-fed epochs of --preset paper in bf16 with the
#      augmentation on the device (images/s per epoch, peak memory);
#   3. the bench table, eager: bf16 and fp32, channels_last, torchvision beside;
#   4. the targets: each figure against its goal (benchmarks/gpu_targets.py);
#   5. the model's correctness on the device (benchmarks/gpu_smoke.py);
#   6. the bench table compiled, bf16 (torch.compile takes tens of seconds a configuration),
#      and the targets again with those rows;
#   7. the Triton kernels' launch choices (bench_triton.py --sweep), with the time left.
# Run from the checkout:
#
#   bash benchmarks/gpu_check.sh [CIFAR10_TARBALL] [OUT_DIR]
#
# Through the device tool: `mkdir -p gpu-data && cp ../shared/data/cifar10-jpeg.tar.gz
# gpu-data/` here (gpu-data/ is git-ignored, 20 MB), then one call with carry ["gpu-data"],
# timeout_s 600 and the command `bash benchmarks/gpu_check.sh`.
#
# It needs only PyTorch (with its Triton), torchvision and the project's pure-Python
# dependencies (no install: PYTHONPATH=src). Each stage has its own time limit, cut to what
# is left of DEADLINE seconds (560: the device tool's 600-s call, less start-up); a stage
# that fails or runs out of time is reported and the next one runs; a stage with under 20 s
# left is skipped. The summary table at the end gives each stage's status and seconds (exit
# code 1 if any failed). SKIP_SMOKE=1, SKIP_TRITON=1, SKIP_SWEEP=1 leave those stages out.
# OUT_DIR (default $OUT, else /tmp/gpu_check) gets the logs and JSON, small enough to bring
# back: {machine,triton,prepare,train,bench,targets,smoke,bench-compiled,sweep}.txt,
# triton.json, bench.json, bench-compiled.json, sweep.json, metrics.jsonl; the 12-GB store
# and the run's checkpoints go to WORK (/tmp/gpu_check_work). DRY_RUN=1 runs the stages on
# the CPU with tiny settings (batch 4, training in fp32, the Triton interpreter; no smoke
# test, no compiled bench), to check the script itself on a machine without a GPU: its
# figures mean nothing. docs/benchmarks.md has an H200's.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-gpu-data/cifar10-jpeg.tar.gz}
OUT=${2:-${OUT:-/tmp/gpu_check}}
WORK=${WORK:-/tmp/gpu_check_work}
DEADLINE=${DEADLINE:-560}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ "${DRY_RUN:-0}" = 1 ]; then
  DEV=cpu BATCH=4 TRITON_DRY=--cpu-dry-run BENCH_RUNS="--steps 1 --warmup 0 --rounds 1"
  COMPILE="" WORKERS=2 SKIP_SMOKE=1 TRAIN_AMP=off  # bf16 training crawls on most CPUs
else
  DEV=cuda BATCH=256 TRITON_DRY="" BENCH_RUNS="--steps 10 --warmup 3 --rounds 2"
  COMPILE=--compile WORKERS=16 TRAIN_AMP=bf16
fi
t0=$(date +%s)
SUMMARY=()
FAILED=0

# stage NAME LIMIT_S LOG COMMAND...: runs COMMAND under a time limit (cut to what is left
# of DEADLINE), its output shown and kept in LOG (QUIET=1: only the last 3 lines shown);
# records the status, never exits.
stage() {
  local name=$1 limit=$2 log=$3 start rc status left
  shift 3
  start=$(date +%s)
  left=$((DEADLINE - (start - t0)))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped, ${left} s left of ${DEADLINE}"
    SUMMARY+=("$(printf '%-68s %-22s %5d' "$name" "skipped (no time)" 0)")
    return 0
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "== $name ($((start - t0)) s in, limit ${limit} s)"
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
    $PY benchmarks/bench_triton.py --batch "$BATCH" --check-samples 2 --json "$OUT/triton.json" \
    $TRITON_DRY
fi

QUIET=1 stage "pack CIFAR-10 at 256 (alexnet prepare)" 120 "$OUT/prepare.txt" \
  $PY -m alexnet prepare "$DATA" "$WORK/store" --size 256 --workers "$WORKERS" --force

# two epochs: the first pays start-up, kernel compilation and cuDNN's search
stage "two epochs of --preset paper in bf16, store-fed, augmentation on the device" 150 \
  "$OUT/train.txt" $PY -m alexnet train --data "$WORK/store" --preset paper --epochs 2 \
  --batch-size "$BATCH" --amp "$TRAIN_AMP" --augment-on device --device "$DEV" --out "$WORK/run" \
  --overwrite
cp "$WORK/run/metrics.jsonl" "$OUT/metrics.jsonl" 2>/dev/null || true

BENCH=($PY -m alexnet bench --device "$DEV" --batch-size "$BATCH" $BENCH_RUNS
  --formats channels_last --models alexnet,torchvision)
stage "bench, eager: bf16 and fp32, channels_last, torchvision beside" 90 "$OUT/bench.txt" \
  "${BENCH[@]}" --amp bf16,off --json-out "$OUT/bench.json"

stage "targets (benchmarks/gpu_targets.py)" 30 "$OUT/targets.txt" \
  $PY benchmarks/gpu_targets.py "$OUT"

if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  stage "correctness on the device (benchmarks/gpu_smoke.py)" 120 "$OUT/smoke.txt" \
    $PY benchmarks/gpu_smoke.py
fi

# torch.compile costs tens of seconds a configuration: bf16 only here, in a stage of its
# own so that a time-out loses none of the figures above
if [ -n "$COMPILE" ]; then
  stage "bench, eager and compiled: bf16, channels_last, torchvision beside" 180 \
    "$OUT/bench-compiled.txt" "${BENCH[@]}" --amp bf16 $COMPILE \
    --json-out "$OUT/bench-compiled.json"
  stage "targets again, with the compiled rows" 30 "$OUT/targets.txt" \
    $PY benchmarks/gpu_targets.py "$OUT"
fi

if [ "${SKIP_SWEEP:-0}" != 1 ]; then
  stage "Triton launch choices, with the time left (bench_triton.py --sweep)" 300 \
    "$OUT/sweep.txt" $PY benchmarks/bench_triton.py --batch "$BATCH" --check-samples 1 \
    --skip-speed --sweep --json "$OUT/sweep.json" $TRITON_DRY
fi

echo "== summary ($(($(date +%s) - t0)) s in all)"
printf '%-68s %-22s %5s\n' "stage" "status" "s"
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
