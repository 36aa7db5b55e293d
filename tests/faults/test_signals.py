"""SIGTERM / SIGINT mid-epoch: a checkpoint, the shell's exit code, and an exact resume."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from alexnet.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def straight_run(tiny_data, tmp_path_factory, small_config_module, run_cli, train_argv):
    """The uninterrupted reference run (2 epochs of 6 steps, --workers 2)."""
    d = tmp_path_factory.mktemp("straight")
    cfg = small_config_module
    r = run_cli(*train_argv(cfg, tiny_data, d / "run", "--workers", "2"))
    assert r.returncode == 0, r.stderr
    return cfg, _weights(d / "run" / "checkpoints" / "last.pt")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_at_a_random_step_then_resume_is_bit_identical(
    straight_run, tiny_data, tmp_path, sig, code, run_cli, train_argv
):
    cfg, reference = straight_run
    step = random.Random(int(sig)).randint(1, 11)  # anywhere in the 12 steps, mid-epoch too
    out = tmp_path / "run"
    args = train_argv(cfg, tiny_data, out, "--workers", "2")
    r = run_cli(*args, fault=f"signal:{int(sig)}:{step}")
    assert r.returncode == code, r.stderr
    assert f"stopped by {sig.name} after step {step}" in r.stderr
    assert "--resume auto" in r.stderr
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == step
    r = run_cli(*args, "--resume", "auto")
    assert r.returncode == 0, r.stderr
    final = _weights(out / "checkpoints" / "last.pt")
    assert all(torch.equal(final[k], reference[k]) for k in reference)


def test_external_sigterm_while_training(tiny_data, tmp_path, small_config, train_argv):
    """A signal from outside, at whatever moment it lands: exit 143 and a loadable checkpoint."""
    out = tmp_path / "run"
    argv = train_argv(small_config, tiny_data, out, "--workers", "2", "--epochs", "50")
    cmd = [sys.executable, "-m", "alexnet", *argv]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.5)  # wait for the first epoch's checkpoint: training is under way
    time.sleep(random.Random(0).uniform(0.0, 2.0))
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in err
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] >= 6
