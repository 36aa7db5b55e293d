"""hold_lock: real processes holding and contending for one directory's lock."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet.errors import UserError
from alexnet.lock import LOCK_NAME, destination_lock_path, hold_lock, read_holder

HELPER = Path(__file__).with_name("lock_holder.py")


def _readline(proc: subprocess.Popen, timeout: float = 120) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the helper process said nothing"
    return proc.stdout.readline().strip()


def _start(kind: str, path: Path) -> subprocess.Popen:
    """tests/lock_holder.py holding ``path``'s lock; returns once it says "held"."""
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), kind, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert _readline(proc).split()[0] == "held"
    return proc


@pytest.fixture
def holders():
    """``start(kind, path)``: helper processes, each killed at the end of the test."""
    procs = []

    def start(kind: str, path: Path) -> subprocess.Popen:
        procs.append(_start(kind, path))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_a_second_process_fails_at_once_naming_the_first(holders, tmp_path):
    first = holders("dir", tmp_path / "run")
    r = subprocess.run(
        [sys.executable, str(HELPER), "dir", str(tmp_path / "run")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    (line,) = r.stdout.splitlines()
    assert f"is in use by process {first.pid} (" in line
    assert "lock_holder.py dir" in line and "wait for it or stop it" in line


def test_the_lock_file_names_its_holder(holders, tmp_path):
    first = holders("dir", tmp_path / "run")
    raw = (tmp_path / "run" / LOCK_NAME).read_text()
    record = json.loads(raw.splitlines()[0])
    assert record == read_holder(tmp_path / "run" / LOCK_NAME)
    assert record["pid"] == first.pid and record["what"] == "lock-test"
    assert record["command"].startswith("lock_holder.py dir ")
    assert {"host", "started"} <= record.keys()


def test_sigkill_leaves_no_stale_lock(holders, tmp_path):
    first = holders("dir", tmp_path / "run")
    with pytest.raises(UserError, match=f"process {first.pid} "), hold_lock(tmp_path / "run"):
        pass
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert read_holder(tmp_path / "run" / LOCK_NAME)["pid"] == first.pid  # its record stays
    with hold_lock(tmp_path / "run") as lock_file:  # ... but not its lock
        assert read_holder(lock_file)["pid"] == os.getpid()
    assert not lock_file.exists()  # a released lock removes its file


def test_a_sigkilled_holders_forked_workers_do_not_keep_its_lock(tmp_path):
    """A SIGKILLed run's DataLoader workers outlive it by up to 5 s (they poll for their
    parent): they must not hold its directory's lock meanwhile."""
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "worker", str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        said, worker = _readline(proc).split()
        assert said == "held"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.kill(int(worker), 0)  # still alive
        with hold_lock(tmp_path / "run") as lock_file:
            assert read_holder(lock_file)["pid"] == os.getpid()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.kill(int(worker), signal.SIGKILL)


def test_nested_holds_in_one_process(tmp_path):
    with hold_lock(tmp_path / "run") as outer, hold_lock(tmp_path / "run") as inner:
        assert inner == outer and outer.exists()
    assert not outer.exists()


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), hold_lock(tmp_path / "run"):
        raise RuntimeError("boom")
    with hold_lock(tmp_path / "run"):
        pass


def test_a_file_in_place_of_the_directory(tmp_path):
    (tmp_path / "run").write_text("x")
    name = f"--out {tmp_path / 'run'}"
    with (
        pytest.raises(UserError, match="--out .* is a file, not") as e,
        hold_lock(tmp_path / "run", name=name),
    ):
        pass
    assert e.value.exit_code == 2
    with pytest.raises(UserError, match="not writable") as e, hold_lock(tmp_path / "run" / "x"):
        pass
    assert e.value.exit_code == 2


def test_prepare_holds_its_destination_while_writing(make_imagefolder, tmp_path):
    """A process trying DST's lock while prepare_store is packing is told our pid."""
    from alexnet.data import prepare_store

    src, dst, answers = make_imagefolder(tmp_path / "src", train=2, val=1), tmp_path / "s", []

    def progress(split: str, done: int, total: int) -> None:
        if not answers:
            r = subprocess.run(
                [sys.executable, str(HELPER), "dest", str(dst)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
            answers.append(r.stdout.strip())

    prepare_store(src, dst, size=16, stats=False, progress=progress)
    assert answers and f"in use by process {os.getpid()} (" in answers[0]
    assert not destination_lock_path(dst).exists()


def test_a_lock_file_deleted_under_us_is_not_taken(holders, tmp_path, monkeypatch):
    """A holder deletes its lock file on release. A process that opened the file just
    before must not count a lock on the deleted file: it retries on the new one (held
    here by a second holder) and is refused, naming that holder."""
    import alexnet.lock as lock

    run, real_flock, second = tmp_path / "run", lock.fcntl.flock, []
    first = holders("dir", run)

    def flock_after_the_holder_moved_on(fd, op):
        if not second:  # we have opened the first holder's file; now it goes ...
            first.stdin.close()
            first.wait(timeout=60)
            second.append(holders("dir", run))  # ... and another process takes a new one
        return real_flock(fd, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock_after_the_holder_moved_on)
    with pytest.raises(UserError) as e, hold_lock(run):
        pass
    assert f"in use by process {second[0].pid} (" in str(e.value)


def test_a_waiting_lock_says_who_holds_it_and_takes_it_when_let_go(holders, tmp_path):
    import threading

    first = holders("dir", tmp_path / "run")
    said, taken = [], threading.Event()

    def wait_for_it() -> None:
        with hold_lock(tmp_path / "run", "report", wait=said.append):
            taken.set()

    t = threading.Thread(target=wait_for_it)
    t.start()
    assert not taken.wait(3) and len(said) == 1  # still waiting, said so once
    assert f"process {first.pid}" in said[0] and "waiting for it" in said[0]
    first.stdin.close()
    t.join(60)
    assert taken.is_set()


def test_a_writer_cannot_take_a_file_a_reader_holds(tmp_path):
    from alexnet.lock import hold_shared, hold_unread, release_shared

    path = tmp_path / "meta.json"
    path.write_text("{}")
    code = (
        "import sys\nfrom alexnet.lock import hold_shared\n"
        f"fd = hold_shared({str(path)!r})\nprint('held', flush=True)\nsys.stdin.read()\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert _readline(reader) == "held"
        refused = rf"x is being read by process {reader.pid} \(python"
        with pytest.raises(UserError, match=refused), hold_unread(path, "x"):
            pass
        fd = hold_shared(path)  # readers share it
        release_shared(fd)
    finally:
        reader.stdin.close()
        reader.wait(60)
    with hold_unread(path, "x"):  # the reader gone
        pass
    with hold_unread(tmp_path / "absent", "x"):  # nothing to protect
        pass


def test_a_reader_waits_out_a_replacement_and_locks_the_new_file(tmp_path):
    import threading

    from alexnet.lock import hold_shared, hold_unread, release_shared

    path = tmp_path / "meta.json"
    path.write_text("old")
    got = []
    with hold_unread(path, "x"):  # a writer replacing the file
        t = threading.Thread(target=lambda: got.append(hold_shared(path)))
        t.start()
        t.join(1)
        assert not got  # the reader waits for the writer
        tmp = tmp_path / "new"
        tmp.write_text("new")
        os.replace(tmp, path)
    t.join(60)
    with os.fdopen(os.dup(got[0])) as f:
        assert f.read() == "new"  # it holds the new file, not the replaced one
    release_shared(got[0])
