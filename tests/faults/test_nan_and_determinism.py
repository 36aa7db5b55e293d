"""A NaN loss at step k, and two same-seed runs giving bit-identical weights."""

from __future__ import annotations

import pytest
import torch

from alexnet.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def test_nan_at_step_k(run_cli, one_line_error, tiny_data, tmp_path, small_config, train_argv):
    out = tmp_path / "run"
    args = train_argv(small_config, tiny_data, out, "--workers", "0")
    r = run_cli(*args, "--epochs", "1")
    assert r.returncode == 0, r.stderr
    last = out / "checkpoints" / "last.pt"
    good = last.read_bytes()
    r = run_cli(*args, "--epochs", "2", "--resume", "auto", fault="nan:9")
    err = one_line_error(r)
    assert r.returncode == 1 and "at step 9" in err and "untouched" in err
    assert last.read_bytes() == good
    assert load_checkpoint(last)["step"] == 6


def test_two_same_seed_runs_are_bit_identical(
    run_cli, tiny_data, tmp_path, small_config, train_argv
):
    finals = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = run_cli(*train_argv(small_config, tiny_data, out, "--workers", "2", "--epochs", "1"))
        assert r.returncode == 0, r.stderr
        finals.append(load_checkpoint(out / "checkpoints" / "last.pt")["model"])
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])
