"""Many interruptions of one run: SIGTERM mid-epoch, between epochs and during validation,
and a SIGKILL among them; every resume continues exactly where the run was."""

from __future__ import annotations

import random
import shutil
import signal

import pytest
import torch

from alexnet.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 6  # tiny_data: 24 training images, batch 4 (conftest's small config)
EPOCHS = ("--epochs", "3", "--workers", "2")  # the last validation ends the run: not that one


def _weights(path):
    return load_checkpoint(path)["model"]


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory, small_config_module, run_cli, train_argv):
    """The uninterrupted run (3 epochs of 6 steps, --workers 2)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    r = run_cli(*train_argv(small_config_module, tiny_data, out, *EPOCHS))
    assert r.returncode == 0, r.stderr
    return _weights(out / "checkpoints" / "last.pt")


def test_sigterm_three_times_then_resume_is_bit_identical(
    reference, tiny_data, tmp_path, small_config_module, run_cli, train_argv
):
    """SIGTERM at a random step mid-epoch 1, between epochs 1 and 2 (once epoch 1 is saved)
    and during epoch 2's validation; four starts; the weights equal the uninterrupted run's."""
    out = tmp_path / "run"
    args = train_argv(small_config_module, tiny_data, out, *EPOCHS)
    step = random.Random(7).randint(1, STEPS_PER_EPOCH - 1)
    term = int(signal.SIGTERM)
    for fault, where in (
        (f"signal:{term}:{step}", {"step": step}),
        (f"epoch-end:{term}:1", {"step": STEPS_PER_EPOCH, "epoch": 1, "batch_in_epoch": 0}),
        (f"validation:{term}", {"step": 2 * STEPS_PER_EPOCH, "epoch": 2}),
    ):
        resume = ["--resume", "auto"] if (out / "checkpoints").exists() else []
        r = run_cli(*args, *resume, fault=fault)
        assert r.returncode == 143, (fault, r.stderr)
        assert "stopped by SIGTERM" in r.stderr and "--resume auto" in r.stderr
        ck = load_checkpoint(out / "checkpoints" / "last.pt")
        assert {k: ck[k] for k in where} == where, fault
    r = run_cli(*args, "--resume", "auto")
    assert r.returncode == 0, r.stderr
    assert _same(_weights(out / "checkpoints" / "last.pt"), reference)


def test_a_sigkill_among_sigterms(
    reference, tiny_data, tmp_path, small_config_module, run_cli, train_argv
):
    """SIGTERM mid-epoch, then SIGKILL a few steps later (its progress since the checkpoint
    is lost), then SIGTERM during validation: the run resumes from the last complete
    checkpoint and ends bit-identical to an uninterrupted run restarted at that checkpoint,
    and to the run never stopped at all."""
    out = tmp_path / "run"
    args = train_argv(small_config_module, tiny_data, out, *EPOCHS)
    rng = random.Random(11)
    first = rng.randint(1, 3)
    term = int(signal.SIGTERM)
    r = run_cli(*args, fault=f"signal:{term}:{first}")
    assert r.returncode == 143, r.stderr
    kill = rng.randint(first + 1, STEPS_PER_EPOCH + 2)  # in epoch 1, or early in epoch 2
    r = run_cli(*args, "--resume", "auto", fault=f"kill:{kill}")
    assert r.returncode == -signal.SIGKILL, r.stderr
    last = out / "checkpoints" / "last.pt"
    survivor = load_checkpoint(last)
    assert survivor["step"] in (first, STEPS_PER_EPOCH)  # the last one written before the kill
    restarted = tmp_path / "restarted"
    (restarted / "checkpoints").mkdir(parents=True)
    shutil.copy(last, restarted / "checkpoints" / "last.pt")
    r = run_cli(*args, "--resume", "auto", fault=f"validation:{term}")
    assert r.returncode == 143, r.stderr
    r = run_cli(*args, "--resume", "auto")
    assert r.returncode == 0, r.stderr
    ref_args = train_argv(small_config_module, tiny_data, restarted, *EPOCHS)
    r = run_cli(*ref_args, "--resume", "auto")
    assert r.returncode == 0, r.stderr
    final = _weights(last)
    assert _same(final, _weights(restarted / "checkpoints" / "last.pt"))
    assert _same(final, reference)
