"""DDP on the CPU with gloo under torchrun: identical weights on every rank, exact evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(*args: str, nproc: int = 2, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *args,
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def odd_data(tmp_path_factory, make_imagefolder):
    """15 validation images: not divisible by 2 ranks (the padded-sampler trap)."""
    return make_imagefolder(tmp_path_factory.mktemp("odd") / "data", train=4, val=5)


MODELS = ("alexnet", "alexnet_bn")


@pytest.fixture(scope="module")
def single(odd_data, tmp_path_factory, train_config):
    """A checkpoint trained in this process, and `alexnet evaluate --json` of it, one process."""
    from alexnet.engine.train import train

    out = tmp_path_factory.mktemp("single") / "run"
    train(train_config(odd_data, out, epochs=1, seed=1))
    return out / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def job(odd_data, single, tmp_path_factory) -> Path:
    """One torchrun job of two ranks (ddp_worker.py): evaluate ``single``, train each model."""
    out = tmp_path_factory.mktemp("ddp")
    torchrun(str(WORKER), str(odd_data), str(out), str(single), *MODELS)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_two_ranks_end_with_identical_weights(job, model):
    out = job / model
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # rank 0 alone wrote the run directory, with these weights
    ck = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 3
    assert all(torch.equal(ck["model"][k], a[k]) for k in a)


def test_two_process_evaluation_equals_single_process(odd_data, single, job, run_cli):
    argv = ["evaluate", str(single), "--data", str(odd_data), "--json", "--workers", "0"]
    r = run_cli(*argv, "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    one = json.loads(r.stdout)
    two = json.loads((job / "evaluate.json").read_text())
    assert one["images"] == two["images"] == 15
    # the loss is a float64 sum over batches that the ranks split differently: equal to its
    # rounding; everything else exactly
    assert two.pop("loss") == pytest.approx(one.pop("loss"), rel=1e-12, abs=0)
    assert one == two
