"""Checkpoint writes that die: SIGKILL mid-write and a full disk never cost the previous one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint
from alexnet.engine.rundir import resume_point
from alexnet.errors import UserError

WRITER = textwrap.dedent("""
    import sys, torch
    from alexnet.engine.checkpoint import save_checkpoint
    path, i = sys.argv[1], 0
    big = torch.randn(12_000_000)  # 48 MB: each write (fsynced) takes about a second
    while True:
        i += 1
        save_checkpoint({"model": {"w": big}, "model_name": "alexnet", "step": i,
                         "optimizer": {}}, path)
        print(i, flush=True)
""")


def test_sigkill_during_writes_leaves_the_previous_checkpoint(tmp_path):
    ckdir = tmp_path / "run" / "checkpoints"
    target = ckdir / "last.pt"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for kills, delay in enumerate((0.15, 0.45, 0.85, 1.3)):
        p = subprocess.Popen(
            [sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True
        )
        if kills == 0:
            assert p.stdout.readline().strip() == "1"  # one complete checkpoint first
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        state = load_checkpoint(target)  # the last complete write still loads
        assert state["model"]["w"].numel() == 12_000_000
    # partial writes only ever live under a temporary name, never the checkpoint's
    assert {f.name for f in ckdir.iterdir() if not f.name.startswith("last.pt.tmp-")} == {"last.pt"}
    assert resume_point(tmp_path / "run")[0] == target


def test_resume_auto_skips_corrupt_and_partial_files(tmp_path):
    ckdir = tmp_path / "checkpoints"
    save_checkpoint(
        {"model": {}, "model_name": "alexnet", "step": 3, "optimizer": {}}, ckdir / "epoch3.pt"
    )
    (ckdir / "last.pt").write_bytes(b"PK\x03\x04garbage")  # not loadable
    (ckdir / "last.pt.tmp-999").write_bytes(b"partial")
    assert resume_point(tmp_path)[0] == ckdir / "epoch3.pt"


@pytest.fixture
def tiny_tmpfs(small_fs):
    """A 2 MiB tmpfs (conftest's small_fs: needs root and mount, skipped elsewhere)."""
    return small_fs("2m")


def test_disk_full_keeps_the_previous_checkpoint(tiny_tmpfs):
    path = tiny_tmpfs / "checkpoints" / "last.pt"
    small = {"model": {"w": torch.ones(1000)}, "model_name": "alexnet", "step": 1}
    save_checkpoint(small, path)
    big = {"model": {"w": torch.ones(1_000_000)}, "model_name": "alexnet", "step": 2}  # 4 MB
    with pytest.raises(UserError, match="disk full"):
        save_checkpoint(big, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left


def test_disk_full_from_the_cli_is_one_line(tiny_tmpfs, run_cli, one_line_error, tmp_path):
    from PIL import Image

    from alexnet.models import create_model

    ck = tmp_path / "ck.pt"
    save_checkpoint(
        {
            # the narrow network: 3.6 MB of weights, more than the 2 MiB tmpfs holds
            "model": create_model("alexnet", num_classes=2, width=0.125).state_dict(),
            "model_name": "alexnet",
            "model_kwargs": {"width": 0.125},
            "classes": ["a", "b"],
        },
        ck,
    )
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    r = run_cli(
        "export", str(ck), "--format", "safetensors", "--out", str(tiny_tmpfs / "m.safetensors")
    )
    err = one_line_error(r)
    assert "No space left" in err or "disk full" in err.lower() or "space" in err
