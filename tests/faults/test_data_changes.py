"""The data under a run: changed data is refused on resume (or continued with a flag the run
records); the same data at another path is accepted."""

from __future__ import annotations

import shutil

import pytest
import torch

from alexnet.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture
def one_epoch(tiny_data, tmp_path, small_config, run_cli, train_argv):
    """A copy of the tiny data and a run of 1 epoch (of 2) on it."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    out = tmp_path / "run"
    r = run_cli(*train_argv(small_config, data, out, "--epochs", "1", "--workers", "0"))
    assert r.returncode == 0, r.stderr
    return data, out


def test_images_added_are_refused_then_allowed_and_recorded(
    one_epoch, small_config, run_cli, one_line_error, train_argv
):
    data, out = one_epoch
    for i in range(3):
        shutil.copy(data / "train" / "circle" / "000.png", data / "train" / "circle" / f"x{i}.png")
    args = train_argv(small_config, data, out, "--epochs", "2", "--workers", "0")
    before = (out / "checkpoints" / "last.pt").read_bytes()
    r = run_cli(*args, "--resume", "auto")
    err = one_line_error(r)
    assert "cannot resume: the data changed" in err and "3 images added to train (24 -> 27)" in err
    assert "--allow-data-change" in err
    assert (out / "checkpoints" / "last.pt").read_bytes() == before  # untouched
    r = run_cli(*args, "--resume", "auto", "--allow-data-change")
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["epoch"] == 2 and ck["data_fingerprint"]["train"]["count"] == 27
    assert ck["data_changes"] == [
        {
            "step": 6,
            "changes": [
                "3 images added to train (24 -> 27)",
                "images per class in train: 'circle' 8 -> 11",
            ],
        }
    ]


def test_moved_data_is_accepted_and_resume_stays_exact(
    one_epoch, tiny_data, tmp_path, small_config, run_cli, train_argv
):
    data, out = one_epoch
    moved = tmp_path / "elsewhere" / "data"
    shutil.move(str(data), str(moved))
    r = run_cli(*train_argv(small_config, moved, out, "--epochs", "2", "--workers", "0"),
                "--resume", "auto")  # fmt: skip
    assert r.returncode == 0, r.stderr
    straight = tmp_path / "straight"
    r = run_cli(*train_argv(small_config, tiny_data, straight, "--epochs", "2", "--workers", "0"))
    assert r.returncode == 0, r.stderr
    a = load_checkpoint(out / "checkpoints" / "last.pt")
    b = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert a["config"]["data"] == str(moved) and not a["data_changes"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
