"""A process that holds a lock until killed, for the lock tests.

    python tests/lock_holder.py dir PATH    hold_lock(PATH)
    python tests/lock_holder.py dest PATH   hold_destination_lock(PATH)
    python tests/lock_holder.py worker PATH hold_lock(PATH), then fork a process that
                                            sleeps (as a DataLoader worker is forked)

Prints "held" (then the forked process's pid for ``worker``) once the lock is taken, then
sleeps until stdin closes or it is killed; a lock it cannot take prints the one-line error
and exits 1.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import time
import types

# alexnet.lock and alexnet.errors without the package's __init__, which imports torch
# (3.5 s a process): the lock needs only the standard library
_package = types.ModuleType("alexnet")
_package.__path__ = [str(importlib.util.find_spec("alexnet").submodule_search_locations[0])]
sys.modules["alexnet"] = _package

from alexnet.errors import UserError  # noqa: E402
from alexnet.lock import hold_destination_lock, hold_lock  # noqa: E402


def _worker(started) -> None:
    """A forked process that says it runs (its at-fork handlers have run) and sleeps."""
    started.set()
    time.sleep(600)


def main(kind: str, path: str) -> int:
    take = hold_destination_lock if kind == "dest" else hold_lock
    try:
        with take(path, "lock-test"):
            if kind == "worker":
                fork = multiprocessing.get_context("fork")
                started = fork.Event()
                worker = fork.Process(target=_worker, args=(started,))
                worker.start()
                started.wait(60)
                print("held", worker.pid, flush=True)
            else:
                print("held", flush=True)
            sys.stdin.read()  # until the test closes our stdin or kills us
    except UserError as e:
        print(e, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
