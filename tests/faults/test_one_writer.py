"""Two processes writing one destination: the second fails at once naming the first, and a
killed first leaves nothing that blocks the next."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

HELPER = Path(__file__).resolve().parents[1] / "lock_holder.py"


def test_second_prepare_into_one_destination_fails_naming_the_first(
    run_cli, one_line_error, tiny_data, tmp_path
):
    dst = tmp_path / "store"
    # The first writer: a process holding DST's lock through alexnet.lock, as a running
    # `alexnet prepare` does from its scan to its final rename.
    first = subprocess.Popen(
        [sys.executable, str(HELPER), "dest", str(dst)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert select.select([first.stdout], [], [], 120)[0], "the holder never took the lock"
        assert first.stdout.readline().strip() == "held"
        r = run_cli("prepare", str(tiny_data), str(dst), "--size", "16", "--no-stats")
        assert r.returncode == 1 and r.stdout == ""
        err = one_line_error(r)
        assert f"{dst} is in use by process {first.pid} (" in err
        assert err.endswith("; wait for it or stop it")
        assert not dst.exists() and not list(tmp_path.glob("store.tmp-*"))  # nothing written
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    r = run_cli("prepare", str(tiny_data), str(dst), "--size", "16", "--no-stats")
    assert r.returncode == 0, r.stderr  # the killed holder's lock died with it
    assert (dst / "meta.json").is_file() and not (tmp_path / ".store.lock").exists()


def test_second_train_into_a_running_run_fails_naming_the_first(
    run_cli, one_line_error, tiny_data, tmp_path, small_config, train_argv
):
    """`alexnet train --out runs/x` is training; a second train into runs/x, with --resume
    auto or --overwrite, fails at once naming the first and touches nothing; once the first
    is SIGKILLed, --resume auto continues from its last checkpoint (no stale lock)."""
    import time

    out = tmp_path / "run"
    argv = train_argv(small_config, tiny_data, out, "--workers", "0", "--epochs", "50")
    first = subprocess.Popen(
        [sys.executable, "-m", "alexnet", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 300
        while not (out / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.2)  # its first epoch is saved: it is training
        metrics = (out / "metrics.jsonl").read_bytes()
        for extra in (["--resume", "auto"], ["--overwrite"]):
            r = run_cli(*argv, *extra)
            assert r.returncode == 1, r.stderr
            err = one_line_error(r)
            assert f"--out {out} is in use by process {first.pid} (" in err, err
            assert "alexnet train" in err
        assert first.poll() is None  # still training, its files still there
        assert (out / "checkpoints" / "last.pt").exists()
        assert (out / "metrics.jsonl").read_bytes()[: len(metrics)] == metrics
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    r = run_cli(*train_argv(small_config, tiny_data, out, "--epochs", "2"), "--resume", "auto")
    assert r.returncode == 0, r.stderr
