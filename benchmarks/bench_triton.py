"""The Triton kernels (alexnet.ops.triton) on a GPU at the paper's shapes: correctness
against float64 CPU references, then GB/s of each kernel beside torch.relu and max_pool2d.

    python benchmarks/bench_triton.py [--batch 256] [--check-samples 4] [--json FILE]
                                      [--sweep] [--cpu-dry-run]

Tails: conv1's (N, 96, 55, 55) and conv2's (N, 256, 27, 27), two towers, bf16 and fp32,
channels_last and NCHW. Correctness: the kernels run on the whole batch; the first and
the last --check-samples samples are compared with the float64 formula on the CPU
(forward and backward; ||out - ref|| / ||ref||, one PASS/FAIL line each). Speed: each
kernel alone (forward: the launcher; backward: the backward launcher), median time over
CUDA events (triton.testing.do_bench, L2 flushed between runs), bytes moved = every tensor
read once plus every output written once; "of relu" is that GB/s over what torch.relu
reaches copying the same input (the card's copy bandwidth for this tensor). The issue's
target: each fused tail, forward and backward, at >= 70% of it. The fused tail is timed
both ways its backward can find each window's maximum (alexnet.ops.triton.SAVE_ARGMAX):
recomputed from z, or read from int8 indices the forward stored.

--sweep then times the launch parameters a GPU must settle, on both tails in bf16
channels_last: ROWS x WARPS for the fused tail (forward, backward recomputing the argmax,
backward reading the int8 argmax) and TILE x WARPS for the LRN, each checked to give the
same bits as the defaults, and names the fastest per kernel. --json FILE writes every
timed row (and the sweep's) as JSON, for benchmarks/gpu_targets.py.

--cpu-dry-run runs the same code on tiny shapes in Triton's interpreter (no GPU: the
times mean nothing), to check the script itself. Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

DRY = "--cpu-dry-run" in sys.argv
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import alexnet.ops.triton as tk  # noqa: E402
from alexnet.ops.formula import lrn_formula  # noqa: E402

ALPHA, K, GROUPS = 1e-4, 2.0, 2  # the paper's LRN (alpha not divided by n)
FAILED: list[str] = []


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def check(name: str, err: float, limit: float) -> None:
    ok = err == err and err <= limit  # NaN never passes
    print(f"{'PASS' if ok else 'FAIL'}  {name:<64} rel err {err:.2e} (limit {limit:.0e})")
    if not ok:
        FAILED.append(name)


def _tensor(shape, dtype, channels_last, device, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g) * scale).to(dtype)
    t = t.to(device)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def correctness(name, shape, dtype, channels_last, device, samples) -> None:
    """Forward and backward of lrn and relu_lrn_pool on the whole batch, against float64
    on the CPU for the first and last `samples` samples."""
    z = _tensor(shape, dtype, channels_last, device, seed=0, scale=30.0)
    n = shape[0]
    pick = sorted({*range(min(samples, n)), *range(max(0, n - samples), n)})
    tag = f"{name} {str(dtype)[6:]} {'channels_last' if channels_last else 'NCHW'}"
    limit = 1e-5 if dtype == torch.float32 else 1e-2
    # the LRN alone, on relu(z) as in CaffeNet's order
    a = torch.relu(z)
    g = _tensor(shape, dtype, channels_last, device, seed=1)
    out, grad = torch.empty_like(a), torch.empty_like(a)
    tk.lrn_forward(a, out, 5, ALPHA, 0.75, K, GROUPS)
    tk.lrn_backward(a, g, grad, 5, ALPHA, 0.75, K, GROUPS)
    a64 = a[pick].double().cpu().requires_grad_(True)
    ref = lrn_formula(a64, 5, ALPHA, 0.75, K, GROUPS)
    ref.backward(g[pick].double().cpu())
    check(f"lrn forward {tag}", rel(out[pick], ref), limit)
    check(f"lrn backward {tag}", rel(grad[pick], a64.grad), limit)
    # the fused tail; the reference rounds the LRN to dtype before the pool (the same ties)
    pooled = torch.empty(pooled_shape(shape), dtype=dtype, device=device)
    pooled = pooled.contiguous(memory_format=torch.channels_last) if channels_last else pooled
    tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS)
    gp = _tensor(pooled.shape, dtype, channels_last, device, seed=2)
    dz = torch.empty_like(z)
    tk.relu_lrn_pool_backward(z, gp, dz, ALPHA, K, GROUPS)
    z64 = z[pick].double().cpu().requires_grad_(True)
    b = lrn_formula(torch.relu(z64), 5, ALPHA, 0.75, K, GROUPS)
    ref = F.max_pool2d(b + (b.to(dtype).double() - b).detach(), 3, 2)
    ref.backward(gp[pick].double().cpu())
    check(f"relu_lrn_pool forward {tag}", rel(pooled[pick], ref), limit)
    check(f"relu_lrn_pool backward {tag}", rel(dz[pick], z64.grad), limit)
    idx = torch.empty_like(pooled, dtype=torch.int8)  # the SAVE_ARGMAX variant: same numbers
    pooled2, dz2 = torch.empty_like(pooled), torch.empty_like(z)
    tk.relu_lrn_pool_forward(z, pooled2, ALPHA, K, GROUPS, idx)
    tk.relu_lrn_pool_backward(z, gp, dz2, ALPHA, K, GROUPS, idx)
    same = torch.equal(pooled2, pooled) and torch.equal(dz2, dz)
    check(f"relu_lrn_pool with int8 argmax, the same bits, {tag}", 0.0 if same else 1.0, 0)
    if device != "cpu":  # the custom op picks the Triton kernels for CUDA tensors
        same = torch.equal(torch.ops.alexnet.relu_lrn_pool(z, ALPHA, K, GROUPS), pooled)
        check(f"torch.ops.alexnet.relu_lrn_pool runs them, {tag}", 0.0 if same else 1.0, 0)


def pooled_shape(shape):
    n, c, h, w = shape
    return n, c, (h - 3) // 2 + 1, (w - 3) // 2 + 1


def timer(fn, dry: bool) -> float:
    """Median milliseconds of fn (CUDA events, L2 flushed), or one CPU run when dry."""
    if dry:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    from triton.testing import do_bench

    return do_bench(fn, warmup=10, rep=60, return_mode="median")


def speed(name, shape, dtype, channels_last, device, dry) -> list[tuple]:
    """(kernel, ms, GB/s) rows for one tail: the kernels, torch.relu and max_pool2d."""
    z = _tensor(shape, dtype, channels_last, device, seed=0, scale=30.0)
    es = z.element_size()
    full = z.numel() * es
    pooled = torch.empty(pooled_shape(shape), dtype=dtype, device=device)
    pooled = pooled.contiguous(memory_format=torch.channels_last) if channels_last else pooled
    part = pooled.numel() * es
    gp, out, dz = torch.randn_like(pooled), torch.empty_like(z), torch.empty_like(z)
    g = torch.randn_like(z)
    idx = torch.empty_like(pooled, dtype=torch.int8)
    tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS, idx)
    runs = [
        ("torch.relu (copy)", lambda: torch.relu(z), 2 * full),
        ("max_pool2d 3/2", lambda: F.max_pool2d(z, 3, 2), full + part),
        ("lrn forward", lambda: tk.lrn_forward(z, out, 5, ALPHA, 0.75, K, GROUPS), 2 * full),
        ("lrn backward", lambda: tk.lrn_backward(z, g, dz, 5, ALPHA, 0.75, K, GROUPS), 3 * full),
        (
            "relu_lrn_pool forward",
            lambda: tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS),
            full + part,
        ),
        (
            "relu_lrn_pool backward",
            lambda: tk.relu_lrn_pool_backward(z, gp, dz, ALPHA, K, GROUPS),
            2 * full + part,
        ),
        (
            "relu_lrn_pool forward, + int8 argmax",
            lambda: tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS, idx),
            full + part + idx.numel(),
        ),
        (
            "relu_lrn_pool backward, int8 argmax",
            lambda: tk.relu_lrn_pool_backward(z, gp, dz, ALPHA, K, GROUPS, idx),
            2 * full + part + idx.numel(),
        ),
        (
            "three layers, eager formula (fwd)",
            lambda: F.max_pool2d(lrn_formula(torch.relu(z), 5, ALPHA, 0.75, K, GROUPS), 3, 2),
            full + part,
        ),
    ]
    rows = []
    for kernel, fn, nbytes in runs:
        ms = timer(fn, dry)
        rows.append((kernel, ms, nbytes / ms / 1e6))
    return rows


# The sweep's grid: (ROWS, WARPS) of the fused tail, (TILE, WARPS) of the LRN; the dry run's
# is smaller (the interpreter ignores warps).
POOL_GRID = [(r, w) for r in (2, 4, 8) for w in (4, 8, 16)]
LRN_GRID = [(t, w) for t in (2048, 4096, 8192) for w in (4, 8)]
DRY_POOL_GRID, DRY_LRN_GRID = [(1, 4), (2, 4)], [(64, 4)]


def sweep(name, shape, device, dry) -> list[dict]:
    """Times each launch choice of both kernel families on one tail (bf16 channels_last),
    checking each gives the defaults' bits; prints a line a choice, returns the rows."""
    dtype, cl = torch.bfloat16, True
    z = _tensor(shape, dtype, cl, device, seed=0, scale=30.0)
    full, es = z.numel() * z.element_size(), z.element_size()
    pooled = torch.empty(pooled_shape(shape), dtype=dtype, device=device)
    pooled = pooled.contiguous(memory_format=torch.channels_last)
    part = pooled.numel() * es
    gp = _tensor(pooled.shape, dtype, cl, device, seed=2)
    g = _tensor(shape, dtype, cl, device, seed=1)
    idx = torch.empty_like(pooled, dtype=torch.int8)
    out, dz = torch.empty_like(z), torch.empty_like(z)
    saved = tk.ROWS, tk.TILE, tk.WARPS
    # the defaults' results: every choice must give these bits
    tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS)
    tk.relu_lrn_pool_backward(z, gp, dz, ALPHA, K, GROUPS)
    tk.lrn_forward(z, out, 5, ALPHA, 0.75, K, GROUPS)
    want = {"pool f": pooled.clone(), "pool b": dz.clone(), "lrn f": out.clone()}
    tk.lrn_backward(z, g, dz, 5, ALPHA, 0.75, K, GROUPS)
    want["lrn b"] = dz.clone()
    copy = full * 2 / timer(lambda: torch.relu(z), dry) / 1e6

    def fwd():
        tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS)

    def fwd_idx():
        tk.relu_lrn_pool_forward(z, pooled, ALPHA, K, GROUPS, idx)

    def bwd():
        tk.relu_lrn_pool_backward(z, gp, dz, ALPHA, K, GROUPS)

    def bwd_idx():
        tk.relu_lrn_pool_backward(z, gp, dz, ALPHA, K, GROUPS, idx)

    def lrn_f():
        tk.lrn_forward(z, out, 5, ALPHA, 0.75, K, GROUPS)

    def lrn_b():
        tk.lrn_backward(z, g, dz, 5, ALPHA, 0.75, K, GROUPS)

    pool = [
        ("relu_lrn_pool forward", fwd, full + part, "pool f", lambda: pooled),
        ("relu_lrn_pool backward", bwd, 2 * full + part, "pool b", lambda: dz),
        ("relu_lrn_pool backward, int8 argmax", bwd_idx, 2 * full + part + idx.numel(),
         "pool b", lambda: dz),
    ]  # fmt: skip
    lrn = [
        ("lrn forward", lrn_f, 2 * full, "lrn f", lambda: out),
        ("lrn backward", lrn_b, 3 * full, "lrn b", lambda: dz),
    ]
    rows: list[dict] = []
    try:
        for family, grid, runs in (
            ("ROWS", DRY_POOL_GRID if dry else POOL_GRID, pool),
            ("TILE", DRY_LRN_GRID if dry else LRN_GRID, lrn),
        ):
            for size, warps in grid:
                tk.WARPS = warps
                if family == "ROWS":
                    tk.ROWS = size
                    fwd_idx()  # the indices the int8 backward reads
                else:
                    tk.TILE = size
                for kernel, fn, nbytes, key, result in runs:
                    ms = timer(fn, dry)
                    fn()
                    same = torch.equal(result(), want[key])
                    if not same:
                        FAILED.append(f"sweep {name} {kernel} {family} {size} warps {warps}")
                    gbs = nbytes / ms / 1e6
                    rows.append(dict(tail=name, kernel=kernel, param=family, value=size,
                                     warps=warps, ms=ms, gbs=gbs, of_relu=gbs / copy,
                                     same_bits=same))  # fmt: skip
                    print(f"{name:<6} {kernel:<38} {family} {size:<5} warps {warps:<3} "
                          f"{ms:8.3f} ms {gbs:7.0f} GB/s {gbs / copy:5.0%} of relu"
                          f"{'' if same else '  FAIL: other bits than the defaults'}",
                          flush=True)  # fmt: skip
    finally:
        tk.ROWS, tk.TILE, tk.WARPS = saved
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        best = min((r for r in rows if r["kernel"] == kernel), key=lambda r: r["ms"])
        print(f"fastest: {name} {kernel}: {best['param']} {best['value']}, "
              f"warps {best['warps']} ({best['of_relu']:.0%} of relu)")  # fmt: skip
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--check-samples", type=int, default=4)
    p.add_argument("--cpu-dry-run", action="store_true", help="tiny shapes, the interpreter")
    p.add_argument("--skip-speed", action="store_true", help="the checks only")
    p.add_argument("--sweep", action="store_true", help="also time the launch choices")
    p.add_argument("--json", metavar="FILE", help="write the timed rows as JSON to FILE")
    args = p.parse_args()
    if args.cpu_dry_run:
        device, tails = "cpu", {"conv1": (2, 2 * 5, 9, 11), "conv2": (2, 2 * 7, 7, 7)}
        card = "none (--cpu-dry-run: Triton's interpreter)"
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no GPU: run with --cpu-dry-run to check the script")
        device = "cuda"
        n = args.batch
        tails = {"conv1": (n, 96, 55, 55), "conv2": (n, 256, 27, 27)}
        card = torch.cuda.get_device_name()
    print(f"device: {card}, torch {torch.__version__}", flush=True)
    cases = [(d, cl) for d in (torch.bfloat16, torch.float32) for cl in (True, False)]
    print("== correctness against float64 on the CPU", flush=True)
    for name, shape in tails.items():
        for dtype, cl in cases:
            correctness(name, shape, dtype, cl, device, args.check_samples)
    report: dict = {"device": card, "torch": torch.__version__, "batch": args.batch,
                    "speed": [], "sweep": []}  # fmt: skip
    if not args.skip_speed:
        print("\n== GB/s (bytes: inputs read once + outputs written once)")
        print(f"{'tail':<6} {'dtype':<9} {'layout':<13} {'kernel':<38} {'ms':>8} {'GB/s':>7} "
              f"{'of relu':>7}", flush=True)  # fmt: skip
        for name, shape in tails.items():
            for dtype, cl in cases:
                rows = speed(name, shape, dtype, cl, device, args.cpu_dry_run)
                copy = rows[0][2]
                layout = "channels_last" if cl else "NCHW"
                for kernel, ms, gbs in rows:
                    print(f"{name:<6} {str(dtype)[6:]:<9} {layout:<13} {kernel:<38} {ms:8.3f} "
                          f"{gbs:7.0f} {gbs / copy:7.0%}", flush=True)  # fmt: skip
                    report["speed"].append(dict(tail=name, dtype=str(dtype)[6:], layout=layout,
                                                kernel=kernel, ms=ms, gbs=gbs,
                                                of_relu=gbs / copy))  # fmt: skip
                _write(args.json, report)
    if args.sweep:
        print("\n== launch choices (bf16 channels_last; the defaults: "
              f"ROWS {tk.ROWS}, TILE {tk.TILE}, WARPS by tile size)", flush=True)  # fmt: skip
        for name, shape in tails.items():
            report["sweep"] += sweep(name, shape, device, args.cpu_dry_run)
            _write(args.json, report)
    _write(args.json, report)
    print("ALL PASS" if not FAILED else f"FAILED: {', '.join(FAILED)}")
    return 1 if FAILED else 0


def _write(path: str | None, report: dict) -> None:
    """The rows so far (a stage cut short by its time limit keeps what it measured)."""
    if path:
        with open(path, "w") as f:
            json.dump(dict(report, failed=FAILED), f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
