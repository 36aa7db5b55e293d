"""ReLU -> LRN -> max-pool 3/2: the custom op torch.ops.alexnet.relu_lrn_pool (what
alexnet.ops.nn.ReLULRNPool runs) against the three layers.

conv1's tail (64x96x55x55 at batch 64) and conv2's (64x256x27x27), forward+backward
(a training step's share) and forward under no_grad (inference), float32 or bf16,
channels_last or NCHW. Both sides get the same conv output and the same pooled
gradient, timed side by side in one process, alternating, median of repeats; the
three layers are the model's own modules (our C LRN kernel included), so the ratio
is what fusing saves. The machine is shared and noisy: compare ratios, not times.

    python benchmarks/bench_fused.py [--batch 64] [--repeats 7] [--bf16] [--nchw]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from alexnet.ops import implementation
from alexnet.ops.nn import LocalResponseNorm


def _fused(z: torch.Tensor, lrn: LocalResponseNorm) -> torch.Tensor:
    return torch.ops.alexnet.relu_lrn_pool(z, lrn.alpha, lrn.k, lrn.groups)


def _time(fused: bool, z: torch.Tensor, g: torch.Tensor, layers, train: bool) -> float:
    z = z.clone()
    relu, lrn, pool = layers
    t0 = time.perf_counter()
    if train:
        z.requires_grad_(True)
        zz = z * 1  # a non-leaf, as a conv output is (in-place ReLU allowed)
        t0 = time.perf_counter()
        y = _fused(zz, lrn) if fused else pool(lrn(relu(zz)))
        y.backward(g)
    else:
        with torch.no_grad():
            _fused(z, lrn) if fused else pool(lrn(relu(z)))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--bf16", action="store_true", help="bf16 tensors (autocast's conv output)")
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    args = p.parse_args()
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    layers = (nn.ReLU(inplace=True), LocalResponseNorm(groups=2, inplace=True), nn.MaxPool2d(3, 2))
    print(
        f"ReLU -> LRN -> max-pool, {str(dtype)[6:]} {'NCHW' if args.nchw else 'channels_last'}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, (c, hw) in {"conv1": (96, 55), "conv2": (256, 27)}.items():
        torch.manual_seed(0)
        z = (torch.randn(args.batch, c, hw, hw) * 20).to(dtype).contiguous(memory_format=fmt)
        if implementation(z) != "c":
            raise SystemExit("the fused kernel does not apply here (no C compiler?)")
        ph = (hw - 3) // 2 + 1
        g = torch.randn(args.batch, c, ph, ph).to(dtype).contiguous(memory_format=fmt)
        for train in (True, False):
            times = {True: [], False: []}
            for _ in range(args.repeats + 1):  # the first round warms up
                for fused in (True, False):
                    times[fused].append(_time(fused, z, g, layers, train))
            a, b = (statistics.median(times[f][1:]) * 1e3 for f in (True, False))
            mode = "forward+backward" if train else "forward, no_grad"
            print(
                f"  {name} {tuple(z.shape)} {mode:17s}: fused {a:7.1f} ms, "
                f"three layers {b:7.1f} ms, {b / a:.2f}x"
            )


if __name__ == "__main__":
    main()
