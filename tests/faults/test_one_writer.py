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
