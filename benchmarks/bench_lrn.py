"""LRN forward+backward: alexnet.ops.nn.LocalResponseNorm against torch.nn.LocalResponseNorm.

Same tensor (default 64x96x55x55 float32, conv1's output at batch 64), same
constants (PyTorch's alpha is multiplied by n so both compute the paper's
formula), timed side by side in one process, alternating, median of repeats.
The ratio is what counts; the machine is shared and noisy.

    python benchmarks/bench_lrn.py [--batch 64] [--repeats 5] [--channels-last] [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alexnet.ops.nn import LocalResponseNorm


def time_fwd_bwd(layer: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> float:
    x = x.detach().requires_grad_(True)
    t0 = time.perf_counter()
    layer(x).backward(g)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="ours on bfloat16 (autocast's conv output); PyTorch's has no CPU bf16: float32",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 96, 55, 55).to(torch.bfloat16 if args.bf16 else torch.float32)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    ours = LocalResponseNorm()  # paper: alpha=1e-4 not divided by n
    theirs = torch.nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)
    x32, g32 = x.float(), g.float()
    tol = {"rtol": 2e-2, "atol": 2e-2} if args.bf16 else {}
    torch.testing.assert_close(ours(x).float(), theirs(x32), **tol)
    time_fwd_bwd(ours, x, g)  # warm-up
    time_fwd_bwd(theirs, x32, g32)
    t_ours, t_theirs = [], []
    for _ in range(args.repeats):
        t_ours.append(time_fwd_bwd(ours, x, g))
        t_theirs.append(time_fwd_bwd(theirs, x32, g32))
    a, b = statistics.median(t_ours), statistics.median(t_theirs)
    fmt = "channels_last" if args.channels_last else "NCHW"
    print(
        f"LRN forward+backward, {tuple(x.shape)} {str(x.dtype)[6:]} {fmt}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  torch.nn.LocalResponseNorm (float32): {b * 1000:8.1f} ms")
    print(f"  alexnet.ops.nn.LocalResponseNorm        : {a * 1000:8.1f} ms")
    print(f"  speed-up: {b / a:.2f}x")


if __name__ == "__main__":
    main()
