"""The `alexnet` processes of the suite, forked from one process that has imported the CLI.

`python -m alexnet ARGS` spends about 3.5 s importing torch and the package before ARGS are
read (2-core AMD EPYC, `python -X importtime -m alexnet train --help`), and the suite runs
about 150 such commands. This process (one per pytest worker, started by tests/conftest.py's
``run_cli``) imports them once and then, for each request, forks a child that becomes the
command: its own pid, working directory, environment, stdin (/dev/null), stdout and stderr
files, signal dispositions and exit status, run by ``runpy`` as ``python -m alexnet`` or
``python tests/faults/fault_runner.py SPEC -- ARGS`` runs it. It ends as the interpreter
would (non-daemon threads joined, atexit callbacks, stdio flushed, the status of
``SystemExit``, an uncaught exception's traceback and status 1, KeyboardInterrupt's death by
SIGINT), then leaves by ``os._exit`` as multiprocessing's forked children do: tearing down
the modules it shares with this process would copy them page by page (1.7 s a command).

Protocol, one JSON line each way: a request {"argv", "env", "cwd", "stdout", "stderr",
"fault"} on stdin; the child's pid, then its wait status as given by ``os.waitpid``, on
stdout. The process imports torch but runs no parallel region, so a child forks from a
single-threaded OpenMP runtime.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import runpy
import signal
import sys
import threading
import traceback
from typing import NoReturn

import numpy  # noqa: F401
import PIL.Image  # noqa: F401
import torch
import torch._dynamo  # noqa: F401  (torch.optim's optimizers import it: 2.7 s)
import torchvision  # noqa: F401
import yaml  # noqa: F401

import alexnet.cli.evaluate
import alexnet.cli.predict
import alexnet.cli.train
import alexnet.engine.train
import alexnet.outputs.export
import alexnet.outputs.report
import alexnet.tasks.evaluate  # noqa: F401
from alexnet.outputs.viz._common import figure_png_bytes
from alexnet.outputs.viz.callbacks import plot_curves

with contextlib.suppress(ImportError):  # train's tb/, where tensorboard is installed
    import torch.utils.tensorboard  # noqa: F401
figure_png_bytes(plot_curves([]))  # matplotlib's fonts, loaded once (0.3 s of a first drawing)

_KEEP = [sys.stdin, sys.stdout, sys.stderr]  # their fds are the pipes; kept from the collector


def _text(fd: int, mode: str, **kw) -> io.TextIOWrapper:
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedWriter(raw) if mode == "w" else io.BufferedReader(raw)
    return io.TextIOWrapper(buffered, encoding="utf-8", **kw)


def _become(req: dict) -> None:
    """In the child: take the request's directory, environment and stdio, as exec would."""
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        f = os.open(path, flags, 0o644)
        os.dup2(f, fd)
        os.close(f)
    # a fresh interpreter's stdio on files: stdout block-buffered and strict, stderr
    # line-buffered with backslashreplace
    sys.stdin = sys.__stdin__ = _text(0, "r")
    sys.stdout = sys.__stdout__ = _text(1, "w")
    sys.stderr = sys.__stderr__ = _text(2, "w", errors="backslashreplace", line_buffering=True)
    threads = req["env"].get("OMP_NUM_THREADS")
    if threads and threads.isdigit():  # read by OpenMP when it loads: here, before the fork
        torch.set_num_threads(int(threads))


def _run(req: dict) -> None:
    _become(req)
    if req["fault"]:  # python tests/faults/fault_runner.py SPEC -- ARGS
        sys.argv = [req["fault_runner"], req["fault"], "--", *req["argv"]]
        sys.path[0] = os.path.dirname(req["fault_runner"])
        runpy.run_path(req["fault_runner"], run_name="__main__")
    else:  # python -m alexnet ARGS
        sys.argv = ["-m", *req["argv"]]
        sys.path[0] = req["cwd"]
        runpy.run_module("alexnet", run_name="__main__", alter_sys=True)


def _child(req: dict) -> NoReturn:
    code: object = 1
    try:
        _run(req)
        code = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


def _serve() -> None:
    print(json.dumps("ready"), flush=True)
    for line in _KEEP[0]:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": status}), flush=True)


if __name__ == "__main__":
    _serve()
