"""One writer per directory: an exclusive OS lock held for the life of a command.

``hold_lock(out)`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``out/.alexnet.lock``
and writes the holder's record into it (one JSON line: pid, host, command line,
start time). A second process fails at once with one line naming the holder::

    runs/x is in use by process 1234 (alexnet train --out runs/x, since 12:03:11);
    wait for it or stop it

The kernel drops a flock when the last descriptor of the open file goes, so a
SIGKILLed holder leaves no stale lock: its record stays in the file, but the next
process takes the lock at once and writes its own. ``hold_destination_lock(dst)``
does the same for a path that appears only when complete (``alexnet prepare SRC
DST``), with ``.DST.lock`` beside it.

Why ``fcntl.flock`` and not the ``filelock`` package: the losing process must read
the holder's record from the lock file, so the file is opened without truncation,
written only by the holder, and checked to be the file at the path after locking
(the holder deletes it on release; a process that opened the deleted file retries).
``filelock`` is built for waiting with a timeout and leaves those choices to its
own version. On NFS, Linux maps flock onto NFS byte-range locks (kernel >= 2.6.12);
platforms without ``fcntl`` (Windows) run without the lock.

Nested ``hold_lock`` calls on one path in one process are allowed (a counter), so
the CLI and the library may both take it. ``hold_lock(out, wait=note)`` waits for the
holder instead of failing (``alexnet report`` into a run that is training).

Readers of a file that a writer may replace (a packed store's meta.json) take a shared
``flock(LOCK_SH)`` for as long as they read it (``hold_shared``); the writer's
``hold_unread`` takes ``LOCK_EX | LOCK_NB`` on it and fails with one line naming a
reader (its pid from /proc/locks, its command line from /proc) while one holds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alexnet.errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = [
    "LOCK_NAME",
    "describe_holder",
    "destination_lock_path",
    "hold_destination_lock",
    "hold_lock",
    "hold_shared",
    "hold_unread",
    "read_holder",
    "release_shared",
]

log = logging.getLogger(__name__)
LOCK_NAME = ".alexnet.lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_HOLDER_WAIT_S = 1.0  # how long a loser waits for the holder to write its record (seconds)
_held: dict[str, tuple[int, int]] = {}  # realpath of a lock file -> (pid, nesting depth)
_held_guard = threading.Lock()
_lock_fds: set[int] = set()  # descriptors of the exclusive locks this process holds


def _drop_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): close the copies of the parent's lock
    descriptors. The lock stays the parent's while it lives, and ends with it: a SIGKILLed
    run's workers, which outlive it by up to 5 s, no longer keep its directory locked."""
    for fd in _lock_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _lock_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


def _display(path: str | os.PathLike) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@contextlib.contextmanager
def hold_lock(
    directory: str | os.PathLike,
    what: str = "train",
    *,
    name: str | None = None,
    wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold ``directory/.alexnet.lock`` (``directory`` is created if needed) until the
    block ends; a ``UserError`` (exit 1) naming the holder if another process has it,
    or with ``wait``: ``wait(message naming the holder)``, then block until it lets go.
    ``what`` describes this command when its command line says nothing (library use);
    ``name`` is how messages show the directory (e.g. ``"--out runs/x"``)."""
    directory = Path(directory)
    name = name or _display(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{name} is a file, not a directory", exit_code=2) from None
    except OSError as e:
        raise UserError(f"{name} is not writable: {e.strerror or e}", exit_code=2) from None
    with _hold(directory / LOCK_NAME, what, name, wait) as path:
        yield path


def destination_lock_path(dst: str | os.PathLike) -> Path:
    """The lock file of a path that appears only when complete: ``.DST.lock`` beside it."""
    dst = Path(dst)
    return dst.parent / f".{dst.name}.lock"


@contextlib.contextmanager
def hold_destination_lock(
    dst: str | os.PathLike, what: str = "prepare", *, name: str | None = None
) -> Iterator[Path]:
    """Hold ``.DST.lock`` beside ``dst`` (its parent is created if needed): one writer
    per destination, such as a packed store being prepared."""
    path = destination_lock_path(dst)
    name = name or _display(dst)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{name}: cannot create {_display(path.parent)}: {e.strerror or e}", exit_code=2
        ) from None
    with _hold(path, what, name) as held:
        yield held


def read_holder(lock_file: str | os.PathLike) -> dict[str, Any] | None:
    """The record a holder wrote into ``lock_file`` (pid, host, command, started), or None
    when there is none or it is unreadable. The record may be a dead process's."""
    try:
        with open(lock_file, "rb") as f:
            return _parse(f.read())
    except OSError:
        return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``process 1234 (alexnet train --out runs/x, since 12:03:11)`` for messages."""
    if not holder:
        return "another process (it has not recorded itself yet)"
    text = f"process {holder.get('pid', '?')}"
    if holder.get("host") and holder["host"] != socket.gethostname():
        text += f" on host {holder['host']}"
    details = []
    command, what = holder.get("command") or "", holder.get("what") or ""
    if what and not command.startswith("alexnet"):  # library use: say what it does
        command = f"{what} via {command}" if command else what
    if command:
        details.append(command if len(command) <= 200 else command[:197] + "...")
    since = _since(holder.get("started"))
    if since:
        details.append(f"since {since}")
    if holder.get("exited"):
        details.append("it has exited, but a process it started still holds the lock")
    return text + (f" ({', '.join(details)})" if details else "")


@contextlib.contextmanager
def _hold(lock_file: Path, what: str, name: str, wait=None) -> Iterator[Path]:
    key = os.path.realpath(lock_file)
    with _held_guard:
        pid, depth = _held.get(key, (0, 0))
        nested = pid == os.getpid()
        if nested:
            _held[key] = (pid, depth + 1)
    if nested:
        try:
            yield lock_file
        finally:
            with _held_guard:
                pid, depth = _held[key]
                _held[key] = (pid, depth - 1)
        return
    if fcntl is None:
        yield lock_file
        return
    fd = _acquire(lock_file, what, name, wait)
    owner = os.getpid()
    with _held_guard:
        _held[key] = (owner, 1)
        _lock_fds.add(fd)
    try:
        yield lock_file
    finally:
        if os.getpid() == owner:  # not a forked child unwinding the parent's frames
            with _held_guard:
                _held.pop(key, None)
                _lock_fds.discard(fd)
            _release(lock_file, fd)


def _acquire(lock_file: Path, what: str, name: str, wait=None) -> int:
    """Lock ``lock_file`` and write our record -> its descriptor; UserError when held
    (``wait``: told who holds it, then the lock is waited for)."""
    for _ in range(100):  # each retry means the holder deleted the file as we opened it
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise UserError(
                f"{name} is not writable: cannot create {_display(lock_file)}: {e.strerror or e}",
                exit_code=2,
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in _UNSUPPORTED:  # a file system without locks (some FUSE, old NFS)
                log.warning("%s: cannot lock (%s); no check for a second writer", name, e)
                return fd
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise UserError(
                    f"{name}: cannot lock {_display(lock_file)}: {e.strerror}"
                ) from None
            holder = _wait_for_record(fd)
            if wait is not None:
                wait(f"{name} is in use by {describe_holder(holder)}; waiting for it")
                wait = lambda _: None  # noqa: E731 - said once
                fcntl.flock(fd, fcntl.LOCK_EX)  # the holder deletes the file as it lets go:
                os.close(fd)  # open the next one
                continue
            os.close(fd)
            raise UserError(
                f"{name} is in use by {describe_holder(holder)}; wait for it or stop it"
            ) from None
        if _same_file(fd, lock_file):
            _write_record(fd, what)
            return fd
        os.close(fd)  # we locked a file its holder had just deleted; take the new one
    raise UserError(f"{name}: could not take {_display(lock_file)} (it keeps being replaced)")


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _write_record(fd: int, what: str) -> None:
    """One JSON line, written over the old record before the file is cut to its length,
    so a reader sees a whole line (ours or a dead holder's) at every moment."""
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": _command_line(),
        "what": what,
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    data = (json.dumps(record) + "\n").encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def _wait_for_record(fd: int) -> dict[str, Any] | None:
    """The holder's record; a missing one, or one of a dead process on this host, is
    re-read for up to ``_HOLDER_WAIT_S`` (the holder writes it right after locking)."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        holder = _parse(os.pread(fd, 64 * 1024, 0))
        if holder and _alive(holder):
            return holder
        if time.monotonic() > deadline:
            return holder and {**holder, "exited": True}
        time.sleep(0.02)


def _alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True  # cannot tell for another host: believe the record
    return pid_alive(holder["pid"])


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still run: what decides if a temporary file
    named after it is a killed run's leftover (another user's process, or a number beyond
    the kernel's, counts as alive: its file is left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _parse(data: bytes) -> dict[str, Any] | None:
    line = data.split(b"\n", 1)[0]
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _release(lock_file: Path, fd: int) -> None:
    """Delete the lock file while still holding it, then drop the lock."""
    try:
        if _same_file(fd, lock_file):
            lock_file.unlink()
    except OSError:
        pass  # a read-only or vanished directory: the lock still ends with the descriptor
    finally:
        os.close(fd)


def _command_line() -> str:
    """``alexnet train --out runs/x`` (``python -m alexnet`` shown as ``alexnet``)."""
    argv = list(sys.argv) or [""]
    prog = Path(argv[0])
    if prog.name == "__main__.py":
        head = prog.parent.name
    elif argv[0] in ("", "-c", "-m"):
        head = f"python {argv[0]}".strip()
    else:
        head = prog.name
    return " ".join([head, *map(shlex.quote, argv[1:])])


def _since(started: Any) -> str | None:
    """``12:03:11`` for today, else ``2024-05-01 12:03:11`` (the holder's local time)."""
    if not isinstance(started, str):
        return None
    try:
        t = dt.datetime.fromisoformat(started)
    except ValueError:
        return None
    now = dt.datetime.now(t.tzinfo)
    return t.strftime("%H:%M:%S" if t.date() == now.date() else "%Y-%m-%d %H:%M:%S")


# ---- readers and the writer that replaces what they read ----


def hold_shared(path: str | os.PathLike) -> int | None:
    """A read-only descriptor of ``path`` with a shared flock on it (waiting out a writer
    that is replacing it), or None without flock. Hold it while reading; ``release_shared``."""
    for _ in range(100):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError as e:
            if e.errno in _UNSUPPORTED:
                return fd
            os.close(fd)
            raise
        if _same_file(fd, Path(path)):
            return fd
        os.close(fd)  # a writer replaced it while we waited: lock the new one
    raise UserError(f"{_display(path)} keeps being replaced; try again")


def release_shared(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def hold_unread(path: str | os.PathLike, name: str) -> Iterator[None]:
    """An exclusive flock on ``path`` for the block (nothing when it does not exist): a
    ``UserError`` naming a reader (``hold_shared``) while one holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        yield
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise UserError(
                    f"{name} is being read by {_describe_readers(fd)}; wait for it or stop it"
                ) from None
        yield
    finally:
        os.close(fd)


def _describe_readers(fd: int) -> str:
    """``process 1234 (alexnet train --data s ...)`` for the flocks /proc/locks lists on
    the file of ``fd``; ``another process`` when it cannot tell."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if "FLOCK" in parts and key in parts:
                    pid = parts[parts.index(key) - 1]
                    if pid.isdigit() and int(pid) != os.getpid() and int(pid) not in pids:
                        pids.append(int(pid))
    except OSError:
        pass
    if not pids:
        return "another process"
    text = ", ".join(f"process {pid}{_cmdline(pid)}" for pid in pids[:3])
    return text + (f" and {len(pids) - 3} more" if len(pids) > 3 else "")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "backslashreplace") for a in f.read().split(b"\0") if a]
    except OSError:
        return ""
    if len(argv) > 2 and argv[1:3] == ["-m", "alexnet"]:
        argv = ["alexnet", *argv[3:]]
    elif len(argv) > 1 and Path(argv[1]).name == "alexnet":  # python .venv/bin/alexnet
        argv = ["alexnet", *argv[2:]]
    elif argv:
        argv[0] = Path(argv[0]).name
    command = " ".join(" ".join(map(shlex.quote, argv)).split())  # one line
    return f" ({command[:197] + '...' if len(command) > 200 else command})" if command else ""
