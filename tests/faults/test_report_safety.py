"""`alexnet report` and `alexnet visualize` writing into a run directory: they wait for the
run's lock, an older report never replaces a newer one, a full disk is one line and a
killed report's temporary file goes. Real subprocesses, real locks, a real full disk."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alexnet.outputs.report import build_report, enclosing_run, save_report, write_report

TESTS = Path(__file__).resolve().parents[1]
RECORD = {"train_loss": 2.0, "val_loss": 2.1, "val_top1_error": 0.6, "val_top5_error": 0.2}


def _run_dir(path: Path, epochs: int = 2) -> Path:
    """A run directory as training leaves it, without checkpoints (the model sections
    are then skipped, so a report takes seconds)."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("model: alexnet\nepochs: 3\n")
    for e in range(1, epochs + 1):
        _add_epoch(path, e)
    return path


def _add_epoch(run: Path, epoch: int) -> None:
    """Append an epoch's record as training does, its mtime clearly later than before."""
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": epoch, **RECORD}) + "\n")
    later = time.time() + epoch  # file systems with coarse timestamps still see it newer
    os.utime(run / "metrics.jsonl", (later, later))


def _popen(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))  # as run_cli
    return subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.PIPE, text=True, env=env, **kw
    )


def _read_until(stream, text: str, timeout: float = 120) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"never said {text!r}: {seen!r}"
        line = stream.readline()
        assert line, f"ended without saying {text!r}: {seen!r}"
        seen += line
    return seen


def _hold_run_lock(run: Path) -> subprocess.Popen:
    """tests/lock_holder.py holding the run's lock, as `alexnet train` does."""
    holder = _popen(str(TESTS / "lock_holder.py"), "dir", str(run), stdout=subprocess.PIPE)
    _read_until(holder.stdout, "held")
    return holder


def _epochs_in(page: Path) -> str:
    text = page.read_text()
    return text[text.index("<summary>all ") :].split("</summary>")[0]


def test_report_into_a_training_run_waits_for_it(tmp_path):
    run = _run_dir(tmp_path / "run")
    holder = _hold_run_lock(run)
    report = None
    try:
        report = _popen("-m", "alexnet", "report", str(run), stderr=subprocess.PIPE)
        said = _read_until(report.stderr, "waiting")
        assert f"process {holder.pid}" in said and "in use by" in said, said
        _add_epoch(run, 3)  # the training goes on meanwhile, then writes its end
        assert not (run / "report.html").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert report.wait(timeout=300) == 0, report.stderr.read()
    assert _epochs_in(run / "report.html") == "<summary>all 3 epochs"  # made after the end


def test_an_older_report_never_replaces_a_newer_one(tmp_path):
    run = _run_dir(tmp_path / "run")
    older = build_report(run)  # started during epoch 3...
    _add_epoch(run, 3)
    page = write_report(run)  # ...while the end of training wrote its report
    newest = page.read_bytes()
    assert save_report(older, page) == page and older.kept_newer  # ...finishes last
    assert page.read_bytes() == newest and _epochs_in(page) == "<summary>all 3 epochs"
    again = build_report(run)  # made from the same files: it may replace it
    save_report(again, page)
    assert not again.kept_newer and page.read_text() == again.html


@pytest.fixture
def tiny_tmpfs(small_fs):
    """A 1 MiB tmpfs (conftest's small_fs: needs root and mount, skipped elsewhere)."""
    return small_fs("1m")


def test_report_disk_full_is_one_line_and_leaves_nothing(
    tiny_tmpfs, tmp_path, run_cli, one_line_error
):
    run = _run_dir(tmp_path / "run")
    fd = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # the disk full, all but 4 KiB
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        os.ftruncate(fd, os.fstat(fd).st_size - 4096)
    finally:
        os.close(fd)
    out = tiny_tmpfs / "report.html"
    line = one_line_error(run_cli("report", str(run), "--out", str(out)))
    assert str(out) in line and "No space left on device" in line, line
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]  # no partial report


def test_a_killed_reports_temporary_file_is_removed_by_the_next(tmp_path):
    run = _run_dir(tmp_path / "run")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = run / f".report.html.tmp-{gone.pid}"
    dead.write_text("<html>half a report")
    live = run / f".report.html.tmp-{os.getppid()}"  # a report still being written
    live.write_text("<html>")
    write_report(run)
    assert not dead.exists() and live.exists() and (run / "report.html").is_file()


def _fake_run_helpers():
    spec = importlib.util.spec_from_file_location("alexnet_tests_fake_run", TESTS / "fake_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_visualize_into_a_training_run_waits_for_it(tmp_path):
    run = _run_dir(tmp_path / "run")
    ckpt = _fake_run_helpers().save_random_checkpoint(
        run / "checkpoints" / "best.pt", "alexnet", ["a", "b"]
    )
    out = run / "plots" / "filters.png"
    assert enclosing_run(out) == run and enclosing_run(tmp_path / "x.png") is None
    holder = _hold_run_lock(run)
    try:
        viz = _popen(
            "-m", "alexnet", "visualize", "filters", str(ckpt), "--out", str(out),
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert f"process {holder.pid}" in _read_until(viz.stderr, "waiting")
        assert not out.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert viz.wait(timeout=300) == 0, viz.stderr.read()
    assert out.stat().st_size > 0
