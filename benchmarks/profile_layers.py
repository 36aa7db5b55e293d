"""Where a step's time goes, layer by layer: the paper's alexnet against torchvision's.

One process builds both models in the setting given (training step or inference, fp32
or bf16 autocast, NCHW or channels_last, eager or compiled, as ``alexnet bench`` runs
them), warms each up and profiles ``--steps`` steps with ``torch.profiler``, then
prints the self time per step of each operator and input shape (convolutions are told
apart by their weights' shapes), largest first. Times on a shared machine move with its
load: compare the two columns of one run, not runs.

    python benchmarks/profile_layers.py [--mode train|infer] [--amp off|bf16] [--nchw]
        [--compile] [--batch 64] [--steps 3] [--top 16]
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

from alexnet.outputs.bench import _build
from alexnet.runtime import autocast, prepare_model


def _profile(name: str, args: argparse.Namespace) -> dict[str, float]:
    dev, cl, train = torch.device("cpu"), not args.nchw, args.mode == "train"
    net, size = _build(name)
    net = prepare_model(net, dev, cl, inference_amp="off" if train else args.amp).train(train)
    f = torch.compile(net) if args.compile else net
    x = torch.randn(args.batch, 3, size, size)
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    y = torch.randint(0, 1000, (args.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        if train:
            with autocast(dev, args.amp):
                loss = F.cross_entropy(f(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode(), autocast(dev, args.amp):
                f(x)

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        for _ in range(args.steps):
            step()
    out: dict[str, float] = {}
    for e in p.key_averages(group_by_input_shape=True):
        if e.self_cpu_time_total > 0:
            shapes = ", ".join(str(tuple(s)) for s in e.input_shapes[:2] if s)
            out[f"{e.key} {shapes}"] = e.self_cpu_time_total / 1e3 / args.steps  # ms/step
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("train", "infer"), default="train")
    p.add_argument("--amp", choices=("off", "bf16"), default="bf16")
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=16)
    args = p.parse_args()
    for name in ("alexnet", "torchvision"):
        ms = _profile(name, args)
        print(f"{name}: {sum(ms.values()):.0f} ms of operator self time per step")
        for key, v in sorted(ms.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {v:8.1f} ms  {key[:110]}")


if __name__ == "__main__":
    main()
