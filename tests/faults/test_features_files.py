"""`alexnet features` writes its .npz whole or not at all: a full disk is one line naming
the file, with no temporary file left; a killed run's temporary file is removed by the next."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
from alexnet.models import create_model

NARROW = {"init": "kaiming", "width": 0.125}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = create_model("alexnet", num_classes=3, **NARROW)
    p = tmp_path_factory.mktemp("ck") / "narrow.pt"
    classes = ["circle", "square", "stripes"]
    save_checkpoint(weights_checkpoint("alexnet", NARROW, m.state_dict(), classes, {}, {}), p)
    return p


@pytest.fixture
def full_tmpfs(small_fs):
    """A 1 MiB tmpfs filled to the last byte (conftest's small_fs: needs root and mount)."""
    mnt = small_fs("1m")
    try:
        with open(mnt / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    return mnt


def _features(run_cli, weights: Path, data: Path, out: Path):
    return run_cli(
        "features", str(weights), "--data", str(data), "--layer", "pool5", "--out", str(out),
        "--device", "cpu", "--workers", "0",
    )  # fmt: skip


def test_features_on_a_full_disk_is_one_line_and_leaves_nothing(
    weights, tiny_data, full_tmpfs, run_cli, one_line_error
):
    out = full_tmpfs / "pool5.npz"
    r = _features(run_cli, weights, tiny_data, out)
    err = one_line_error(r)
    assert err == f"alexnet: error: disk full while writing {out}; nothing was written"
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    assert sorted(p.name for p in full_tmpfs.iterdir()) == ["filler"]


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(
    weights, tiny_data, run_cli, tmp_path
):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    out = tmp_path / "fc7.npz"
    stale = tmp_path / f"fc7.npz.tmp-{gone.pid}"
    stale.write_bytes(b"PK\x03\x04 half an npz")
    mine = tmp_path / f"fc7.npz.tmp-{os.getpid()}"  # a live process's: kept
    mine.write_bytes(b"in progress")
    r = _features(run_cli, weights, tiny_data, out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, mine.name])
