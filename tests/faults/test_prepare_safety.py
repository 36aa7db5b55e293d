"""`alexnet prepare SRC DST --force`: what it may replace, a store a run is reading, a full
disk, and what a killed prepare leaves. Real subprocesses of the CLI on real files."""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet.data import PackedDataset, prepare_store


def _tree(root: Path, per_class: int = 2, side: int = 24) -> Path:
    """An ImageFolder of 2 classes: ``per_class`` train and 1 val noise PNG each."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 1)):
        for cls in ("a", "b"):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) -> the SHA-256 of its bytes."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _everything(root: Path) -> dict[str, str]:
    return {k: v for p in sorted(root.iterdir()) for k, v in _snapshot(p).items()}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize(
    "case", ["dst_is_src", "dst_inside_src", "dst_holds_src", "ordinary_folder", "regular_file"]
)
def test_prepare_force_refuses_what_is_not_a_store(case, tmp_path, run_cli, one_line_error):
    src = _tree(tmp_path / "data" / "x")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("years of work")
    (tmp_path / "notes.txt").write_text("a file")
    dst = {
        "dst_is_src": src,
        "dst_inside_src": src / "store",
        "dst_holds_src": src.parent,
        "ordinary_folder": docs,
        "regular_file": tmp_path / "notes.txt",
    }[case]
    before = _everything(tmp_path)
    r = run_cli("prepare", str(src), str(dst), "--force", "--size", "16")
    line = one_line_error(r)
    assert r.returncode == 2 and str(dst) in line, line
    want = {
        "dst_is_src": "is SRC itself",
        "dst_inside_src": "is inside SRC",
        "dst_holds_src": "holds SRC",
        "ordinary_folder": "not a packed store",
        "regular_file": "is a file",
    }[case]
    assert want in line, line
    after = _everything(tmp_path)
    assert after == before  # every byte of every file survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "docs", "notes.txt"]
    assert not (src / "store").exists() and not list(src.parent.glob(".*lock"))


def test_prepare_force_replaces_a_store_and_an_empty_folder(tmp_path, run_cli):
    src = _tree(tmp_path / "x")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("prepare", str(src), str(empty), "--force", "--size", "16", "--no-stats")
    assert r.returncode == 0, r.stderr
    assert PackedDataset(empty).size == 16
    r = run_cli("prepare", str(src), str(empty), "--force", "--size", "8", "--no-stats")
    assert r.returncode == 0, r.stderr
    assert PackedDataset(empty).size == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "x"]  # no .old-/.tmp- left


def _reader(store: Path) -> subprocess.Popen:
    """A second process with the store open as training holds it; returns once it is."""
    code = (
        "import sys\nfrom alexnet.data import PackedDataset\n"
        f"ds = PackedDataset({str(store)!r}, 'train')\n"
        "print('open', flush=True)\nsys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    assert ready and proc.stdout.readline().strip() == "open"
    return proc


def test_prepare_refuses_a_store_being_read(tmp_path, run_cli, one_line_error):
    src = _tree(tmp_path / "x")
    store = tmp_path / "s"
    prepare_store(src, store, size=16, stats=False)
    before = _snapshot(store)
    reader = _reader(store)
    try:
        r = run_cli("prepare", str(src), str(store), "--force", "--size", "8", "--no-stats")
        line = one_line_error(r)
        assert r.returncode == 1 and "is being read by" in line
        assert f"process {reader.pid}" in line, line  # the reader named
        assert _snapshot(store) == before
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    r = run_cli("prepare", str(src), str(store), "--force", "--size", "8", "--no-stats")
    assert r.returncode == 0, r.stderr  # the reader gone, the store is replaced
    assert PackedDataset(store).size == 8


@pytest.fixture
def tiny_tmpfs(small_fs):
    """A 2 MiB tmpfs (conftest's small_fs: needs root and mount, skipped elsewhere)."""
    return small_fs("2m")


def test_prepare_disk_full_is_one_line_and_leaves_nothing(tiny_tmpfs, tmp_path, run_cli):
    src = _tree(tmp_path / "x", per_class=8)  # 16 train images of 3x256x256: 3 MiB > 2 MiB
    r = run_cli("prepare", str(src), str(tiny_tmpfs / "s"), "--size", "256", "--no-stats")
    assert r.returncode == 1, (r.returncode, r.stderr)  # not 135 (SIGBUS)
    errors = [x for x in r.stderr.splitlines() if x.startswith("alexnet: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(tiny_tmpfs / "s") in errors[0] and "No space left on device" in errors[0]
    assert list(tiny_tmpfs.iterdir()) == []  # no partial store, no lock file
    r = run_cli("prepare", str(src), str(tiny_tmpfs / "s"), "--size", "64", "--no-stats")
    assert r.returncode == 0, r.stderr  # the same command fits at a smaller size
    assert len(PackedDataset(tiny_tmpfs / "s")) == 16


def test_leftovers_of_a_killed_prepare_are_removed_by_the_next(tmp_path):
    src = _tree(tmp_path / "x")
    dead, live = _dead_pid(), os.getpid()
    stale = [tmp_path / f"s.tmp-{dead}-abc123", tmp_path / f"s.old-{dead}-xyz_9"]
    for d in stale:
        d.mkdir()
        (d / "train.u8").write_bytes(b"\0" * 1000)
    alive = tmp_path / f"s.tmp-{live}-keep1"  # a prepare still running owns it
    alive.mkdir()
    other = tmp_path / f"t.tmp-{dead}-abc123"  # another destination's
    other.mkdir()
    prepare_store(src, tmp_path / "s", size=8, stats=False)
    assert not any(d.exists() for d in stale)
    assert alive.is_dir() and other.is_dir()
    assert len(PackedDataset(tmp_path / "s")) == 4
