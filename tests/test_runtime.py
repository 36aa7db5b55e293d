"""alexnet.runtime.prefetched: the training loop's batches, copied one ahead on CUDA."""

from __future__ import annotations

import pytest
import torch

from alexnet.runtime import prefetched


def _batches(n: int, pin: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=g)
        target = torch.randint(0, 10, (4,), generator=g)
        out.append((images.pin_memory(), target.pin_memory()) if pin else (images, target))
    return out


def test_on_the_cpu_the_batches_pass_as_they_are():
    batches = _batches(3)
    got = list(prefetched(iter(batches), torch.device("cpu")))
    assert len(got) == 3
    assert all(a is c and b is d for (a, b), (c, d) in zip(got, batches, strict=True))
    assert list(prefetched(iter([]), torch.device("cpu"))) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (gpu_smoke.py checks it)")
def test_on_cuda_every_batch_arrives_intact_while_the_step_runs():
    dev = torch.device("cuda")
    batches = _batches(8, pin=True)
    w, seen = torch.randn(2048, 2048, device=dev), []
    for images, target in prefetched(iter(batches), dev):
        assert images.device.type == "cuda" and target.device.type == "cuda"
        torch.mm(w, w)  # the step's stream busy while the next copy runs
        seen.append((images.clone(), target.clone()))
    for (a, b), (c, d) in zip(seen, batches, strict=True):
        assert torch.equal(a.cpu(), c) and torch.equal(b.cpu(), d)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cudnn_searches_its_algorithms_unless_runs_must_be_deterministic(monkeypatch):
    from alexnet.runtime import prepare_model

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    prepare_model(torch.nn.Conv2d(3, 4, 3), torch.device("cuda"), channels_last=False)
    assert torch.backends.cudnn.benchmark
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    torch.use_deterministic_algorithms(True)
    try:
        prepare_model(torch.nn.Conv2d(3, 4, 3), torch.device("cuda"), channels_last=False)
    finally:
        torch.use_deterministic_algorithms(False)
    assert not torch.backends.cudnn.benchmark


def test_the_cpu_leaves_cudnn_alone(monkeypatch):
    from alexnet.runtime import prepare_model

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    prepare_model(torch.nn.Conv2d(3, 4, 3), torch.device("cpu"), channels_last=True)
    assert not torch.backends.cudnn.benchmark
