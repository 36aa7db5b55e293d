"""Helpers for the fault-injection suite: real processes of the `alexnet` CLI (tests/conftest.py's
``run_cli``) on real files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

# A small but real run: the paper's network at width 1/16 (two towers, both LRNs and their
# fused kernels, 227-pixel input; 0.23 M parameters, a 1.8 MB last.pt) with Kaiming init, at
# batch 4 on 24 images (conftest's tiny_data).
SMALL_MODEL = {"init": "kaiming", "width": 0.0625}  # tests/conftest.py's NARROW


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    """Assert the process failed with a single `alexnet: error:` line and no traceback."""
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("alexnet: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


@pytest.fixture
def small_config(tmp_path) -> Path:
    """A --config file for short CPU runs (batch 4, lr 0.001, fp32, no channels_last, no
    report.html at the end)."""
    return write_small_config(tmp_path / "small.yaml")


@pytest.fixture(scope="module")
def small_config_module(tmp_path_factory) -> Path:
    return write_small_config(tmp_path_factory.mktemp("cfg") / "small.yaml")


@pytest.fixture(scope="session")
def one_line_error():
    """`one_line_error(completed)`: assert a one-line error and return it."""
    return _one_line_error


def write_small_config(path: Path, **over) -> Path:
    cfg = {
        "model_kwargs": SMALL_MODEL,
        "batch_size": 4,
        "lr": 0.001,
        "epochs": 2,
        "seed": 11,
        "device": "cpu",
        "amp": "off",
        "channels_last": "off",
        "normalize": "channel",
        "quiet": True,
        "report": False,  # the report's own tests: test_report_safety.py, outputs/test_report.py
        **over,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def train_argv():
    """`train_argv(config, data, out, *extra)`: the `alexnet train` arguments of a run."""

    def argv(config, data, out, *extra: str) -> list[str]:
        return ["train", "--config", str(config), "--data", str(data), "--out", str(out), *extra]

    return argv


@pytest.fixture
def small_fs(tmp_path):
    """``small_fs(size, inodes)``: a mounted tmpfs of that size and inode count for the
    disk-full cases (needs root and mount; skipped elsewhere), unmounted afterwards."""
    mounted = []

    def mount(size: str, inodes: int = 10_000) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("needs root to mount a small tmpfs")
        mnt = tmp_path / f"fs{len(mounted)}"
        mnt.mkdir()
        opts = f"size={size},nr_inodes={inodes}"
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True
        )
        if r.returncode != 0:
            pytest.skip(f"could not mount a tmpfs: {r.stderr.decode().strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)], check=False)
