"""Shared fixtures. Tests run on the CPU with a fixed seed and few threads."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _threads_per_process() -> int:
    """PyTorch threads for each test process and each command it starts: the cores shared
    out among pytest-xdist's workers, at most 2. Two workers of two OpenMP threads each on
    two cores spin-wait on each other's cores: tests/engine, tests/models and two more
    files took 181 s with 2 threads a worker against 134 s with 1 (`pytest -n 2`, 2-core
    AMD EPYC)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (cores or 1) // workers))


THREADS = _threads_per_process()
torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar10_tarball() -> Path:
    """../shared/data/cifar10-jpeg.tar.gz, or skip where the machine has no shared data."""
    p = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not p.exists():
        pytest.skip(f"{p} is absent (a fresh machine has no ../shared)")
    return p


def write_tiny_imagefolder(
    root: Path, classes=("circle", "square", "stripes"), train=8, val=4, size=(48, 40), seed=0
) -> Path:
    """A small ImageFolder tree (root/train/<class>/*.png, root/val/...) of drawn shapes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for ci, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                bg = tuple(int(v) for v in rng.integers(0, 256, 3))
                fg = tuple(int(v) for v in rng.integers(0, 256, 3))
                img = Image.new("RGB", size, bg)
                draw = ImageDraw.Draw(img)
                w, h = size
                if ci % 3 == 0:
                    draw.ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=fg)
                elif ci % 3 == 1:
                    draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=fg)
                else:
                    for x in range(0, w, 6):
                        draw.line([x, 0, x, h], fill=fg, width=2)
                img.save(d / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 classes x (8 train, 4 val) PNGs; shared by tests that only read it."""
    return write_tiny_imagefolder(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def make_imagefolder():
    """The tiny ImageFolder writer, for tests that need their own tree."""
    return write_tiny_imagefolder


# The width the suite trains unless a test is about the full-size network: 1/16 keeps two
# towers (3 of conv1's 6 maps each), both LRNs and their fused kernels and the 227-pixel
# input at 0.23 M parameters (a 1.8 MB last.pt with its momenta, written every epoch).
NARROW = 0.0625


def tiny_train_config(data: Path, out: Path, **overrides):
    """A TrainConfig for short CPU runs on tiny data (batch 4, fp32, no workers, quiet) of
    the paper's network at width NARROW."""
    from alexnet.engine.config import TrainConfig

    base = dict(
        data=str(data),
        out=str(out),
        epochs=2,
        batch_size=4,
        lr=0.001,
        workers=0,
        quiet=True,
        device="cpu",
        amp="off",
        channels_last="off",
        normalize="channel",
        seed=5,
        model_kwargs={"init": "kaiming", "width": NARROW},
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def train_config():
    """`train_config(data, out, **overrides)`: see tiny_train_config."""
    return tiny_train_config


class _Zygote:
    """tests/cli_zygote.py, started on first use: `alexnet` commands as forked processes."""

    SCRIPT = Path(__file__).with_name("cli_zygote.py")
    FAULT_RUNNER = Path(__file__).parent / "faults" / "fault_runner.py"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.buf = b""  # what was read of the zygote's replies beyond the last line

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, str(self.SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=_cli_env(),
                cwd=REPO,
            )
            self.buf = b""
            assert self._reply(300) == "ready", "tests/cli_zygote.py did not start"
        return self.proc

    def _reply(self, timeout: float | None) -> dict | None:
        """The zygote's next JSON line, or None after ``timeout`` seconds."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            if not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 4096)
            assert chunk, "tests/cli_zygote.py exited"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def run(
        self, argv: list[str], env: dict, cwd: Path | None, timeout: float, fault: str | None
    ) -> subprocess.CompletedProcess:
        proc = self._start()
        with tempfile.TemporaryDirectory(prefix="alexnet-cli-") as d:
            out, err = Path(d) / "stdout", Path(d) / "stderr"
            req = {"argv": argv, "env": env, "cwd": str(cwd or Path.cwd()), "fault": fault}
            req.update(stdout=str(out), stderr=str(err), fault_runner=str(self.FAULT_RUNNER))
            proc.stdin.write(json.dumps(req).encode() + b"\n")
            pid = self._reply(60)["pid"]
            reply = self._reply(timeout)
            if reply is None:
                os.kill(pid, signal.SIGKILL)
                self._reply(60)
                raise subprocess.TimeoutExpired(argv, timeout, out.read_text(), err.read_text())
            code = os.waitstatus_to_exitcode(reply["status"])
            read = lambda p: p.read_bytes().decode(errors="replace")  # noqa: E731
            return subprocess.CompletedProcess(argv, code, read(out), read(err))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _cli_env(**extra: str) -> dict:
    """The environment of an `alexnet` command: the caller's, OMP_NUM_THREADS THREADS unless
    it says otherwise, ALEXNET_DEBUG unset, then ``extra``."""
    e = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(THREADS)))
    e.pop("ALEXNET_DEBUG", None)
    return {**e, **extra}


def run_alexnet(
    *args: str,
    env: dict | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
    fault: str | None = None,
) -> subprocess.CompletedProcess:
    """`python -m alexnet ARGS` as a real process (forked by tests/cli_zygote.py, which has
    imported the package once), output captured as text; with ``fault`` ("nan:K",
    "signal:SIG:K", ...) through tests/faults/fault_runner.py. OMP_NUM_THREADS is THREADS
    unless the caller's environment or ``env`` says otherwise; ALEXNET_DEBUG is unset."""
    return _ZYGOTE.run(list(args), _cli_env(**(env or {})), cwd, timeout, fault)


_ZYGOTE = _Zygote()


@pytest.fixture(scope="session")
def run_cli():
    """`run_cli(*args, env=None, timeout=600, cwd=None, fault=None)`: see run_alexnet."""
    yield run_alexnet
    _ZYGOTE.close()
