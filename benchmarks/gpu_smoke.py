"""Correctness of the CUDA path, before any timing: python benchmarks/gpu_smoke.py (a GPU).

Each line is PASS or FAIL with the measured relative error ||out - ref|| / ||ref||
against float64 references computed on the CPU: the paper's model forward and
backward (TF32 convolutions: ~1e-3 expected), the LRN alone, batch_augment's centre
crop against the CPU transform, the training loop's prefetched batches, and
torch.compile against eager. Exit code 1 if any
check fails.
"""

from __future__ import annotations

import sys

import torch

from alexnet.data import batch_augment
from alexnet.data.stats import IMAGENET_STATS
from alexnet.models import create_model
from alexnet.ops.nn import local_response_norm, local_response_norm_reference
from alexnet.runtime import prefetched

FAILED = []


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def check(name: str, err: float, limit: float) -> None:
    ok = err == err and err <= limit  # NaN never passes
    print(f"{'PASS' if ok else 'FAIL'}  {name:<52} rel err {err:.2e} (limit {limit:.0e})")
    if not ok:
        FAILED.append(name)


def main() -> int:
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    g = torch.Generator().manual_seed(0)
    model = create_model("alexnet", num_classes=10).eval()
    x = torch.randn(8, 3, 227, 227, generator=g) * 60  # pixel-scale inputs
    ref = model.double()(x.double())
    gpu = create_model("alexnet", num_classes=10).to(dev)
    gpu.load_state_dict(model.state_dict())
    gpu.eval()
    check("forward, fp32 (TF32 convolutions)", rel(gpu(x.to(dev)), ref), 5e-3)
    y = torch.randint(0, 10, (8,), generator=g)
    for m in (model, gpu):  # no dropout: the two would draw different masks
        m.train()
        m.classifier.drop6.p = m.classifier.drop7.p = 0.0
    torch.nn.functional.cross_entropy(model(x.double()), y).backward()
    torch.nn.functional.cross_entropy(gpu(x.to(dev)), y.to(dev)).backward()
    for name in ("conv1", "conv2", "fc6"):
        layer = getattr(model.features, name, None) or getattr(model.classifier, name)
        mine = getattr(gpu.features, name, None) or getattr(gpu.classifier, name)
        check(
            f"gradient of {name}, fp32 (dropout 0)", rel(mine.weight.grad, layer.weight.grad), 2e-2
        )
    a = torch.relu(torch.randn(4, 96, 55, 55, generator=g, dtype=torch.float64) * 30)
    for groups in (1, 2):
        out = local_response_norm(a.float().to(dev), groups=groups)
        check(
            f"LRN on the device, groups {groups}",
            rel(out, local_response_norm_reference(a, groups=groups)),
            1e-5,
        )
        cl = a.float().to(dev).contiguous(memory_format=torch.channels_last)
        out = local_response_norm(cl, groups=groups)
        check(
            f"LRN channels_last, groups {groups}",
            rel(out, local_response_norm_reference(a, groups=groups)),
            1e-5,
        )
    batch = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8, generator=g)
    for norm in ("pixel", "channel"):
        cpu = batch_augment(batch, train=False, stats=IMAGENET_STATS, normalize=norm)
        dv = batch_augment(batch.to(dev), train=False, stats=IMAGENET_STATS, normalize=norm)
        check(f"batch_augment centre crop ({norm}) vs CPU", rel(dv, cpu), 1e-6)
        t = batch_augment(batch.to(dev), train=True, stats=IMAGENET_STATS, normalize=norm,
                          generator=torch.Generator(dev).manual_seed(0))  # fmt: skip
        check(
            f"batch_augment train ({norm}) shape and finite",
            0.0 if t.shape == (4, 3, 227, 227) and t.isfinite().all() else float("nan"),
            0,
        )
    # the training loop's copies one batch ahead on a side stream: every batch arrives
    # intact although the step's kernels run during the next copy and its memory is freed
    batches = [
        (
            torch.randint(0, 256, (64, 3, 256, 256), dtype=torch.uint8, generator=g).pin_memory(),
            torch.randint(0, 10, (64,), generator=g).pin_memory(),
        )
        for _ in range(12)
    ]
    w, seen = torch.randn(4096, 4096, device=dev), []
    for images, target in prefetched(iter(batches), dev):
        for _ in range(4):  # ~1 ms of work on the step's stream while the next copy runs
            torch.mm(w, w)
        seen.append(torch.stack([images.double().sum(), target.double().sum()]))
    got = torch.stack(seen).cpu()
    want = torch.tensor([[i.double().sum(), t.double().sum()] for i, t in batches])
    check("prefetched batches (side-stream copies) intact", float((got - want).abs().max()), 0)
    plain = create_model("alexnet", num_classes=10).to(dev).eval()
    plain.load_state_dict(gpu.state_dict())
    compiled = torch.compile(plain)
    with torch.no_grad():
        gpu.eval()
        check("torch.compile vs eager (fp32)", rel(compiled(x.to(dev)), plain(x.to(dev))), 1e-3)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            check("bf16 autocast vs fp32", rel(gpu(x.to(dev)).float(), ref.float()), 5e-2)
    print("ALL PASS" if not FAILED else f"FAILED: {', '.join(FAILED)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
