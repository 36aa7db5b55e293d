"""The C kernels (``csrc/lrn.c``: the LRN; ``csrc/lrn_pool.c``: ReLU -> LRN ->
max-pool in one pass): one library, built once per machine with the system C
compiler and loaded with ctypes.

Plain C with no Python or PyTorch headers, so the build takes about 11 s (2-core AMD
EPYC), not the minute of a ``torch.utils.cpp_extension`` build. It is built with ``-fopenmp`` and
so linked to ``libgomp.so.1``, the OpenMP runtime PyTorch's Linux wheels load (as
``torch/lib/libgomp.so.1``): the dynamic loader resolves the name to that copy, and
the kernels' threads are PyTorch's own. With a thread pool of its own, the LRN took
65 ms of a bf16 channels_last training step at batch 64 (2-core CPU), against 39 ms
with ``OMP_WAIT_POLICY=PASSIVE``: PyTorch's OpenMP threads spin-wait for a while
after each op, on the cores the pool needs. Where ``-fopenmp`` does not build (a
compiler without OpenMP), it is built without and runs on one thread.

The library goes to ``kernels/`` in alexnet's cache folder
(``alexnet._cache.cache_dir``), named by a hash of the sources, the compiler command
and the CPU's feature flags (it is built with ``-march=native``). The two sources compile
side by side (``lrn_pool.c`` alone takes 11 s at -O3 on a 2-core AMD EPYC, ``lrn.c`` 4 s).
One process builds while the others that need the same library (torchrun ranks, test
workers) wait on ``fcntl.flock`` and then load it; it is written under a temporary name
and renamed, so no process ever loads a half-written file. Without a compiler, or when
the build fails, :func:`lrn_library` records why and returns None, and ``alexnet.ops.nn``
keeps its torch-ops path;
``ALEXNET_LRN_KERNEL=torch`` forces that path, ``ALEXNET_LRN_KERNEL=c`` turns a failed
build into an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from alexnet._cache import cache_dir

__all__ = ["kernel_status", "lrn_library"]

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = (_CSRC / "lrn.c", _CSRC / "lrn_pool.c")  # both include csrc/kernels.h
_HEADERS = (_CSRC / "kernels.h",)
# -fno-associative-math: the same expression gives the same bits in lrn.c and in
# lrn_pool.c (the fused ReLU-LRN-pool then equals the three layers exactly), at no
# measured cost; the rest of -ffast-math gives the 1/sqrtf approximation.
# Compiled with these, linked without them: linking with -ffast-math adds crtfastmath.o,
# whose constructor sets flush-to-zero for the whole process on load (every later float32
# subnormal in numpy or torch became 0).
_FLAGS = (
    "-O3",
    "-march=native",
    "-ffast-math",
    "-fno-associative-math",
    "-fPIC",
    "-std=c11",
)
_LINK = ("-shared", "-fPIC")
_OPENMP = ("-fopenmp",)
_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib" (CDLL or None), "error", "openmp_error" (str)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(cc: str, flags: tuple[str, ...]) -> Path:
    code = [f.read_bytes() for f in (*_SOURCES, *_HEADERS)]
    link = (*_LINK, *(f for f in flags if f in _OPENMP))
    key = hashlib.sha256(
        b"\0".join([*code, cc.encode(), " ".join((*flags, *link)).encode(), _cpu_flags().encode()])
    ).hexdigest()[:16]
    out = cache_dir() / "kernels" / f"lrn-{platform.machine()}-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _building(out):
        if out.exists():  # another process built it while this one waited
            return out
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            with tempfile.TemporaryDirectory(dir=out.parent) as objdir:
                objects = [str(Path(objdir) / f"{src.stem}.o") for src in _SOURCES]
                _run_all(
                    cc,
                    [
                        [*flags, "-c", str(src), "-o", o]
                        for src, o in zip(_SOURCES, objects, strict=True)
                    ],
                )
                _run_all(cc, [[*link, "-o", tmp, *objects, "-lm"]])
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


@contextlib.contextmanager
def _building(out: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``out``'s lock file while it is built. Without fcntl, or on
    a file system without locks, it builds unlocked (the rename still keeps loads whole).
    Not ``alexnet.lock``: ``ops/`` imports only torch, the standard library and ``_cache``."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(out.with_name(out.name + ".lock"), "a") as f:
        with contextlib.suppress(OSError):  # ENOLCK, EOPNOTSUPP: some FUSE and old NFS
            fcntl.flock(f, fcntl.LOCK_EX)  # released when f closes
        yield


def _run_all(cc: str, commands: list[list[str]]) -> None:
    """Run the compiler commands side by side; the first failure raises with its stderr."""
    procs = [
        subprocess.Popen([cc, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for args in commands
    ]
    errors = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                errors.append(err.strip()[-2000:])
    finally:  # a timeout (or an interrupt) leaves no compiler running
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    if errors:
        raise RuntimeError(f"{cc} failed: {errors[0]}")


def _load() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc, or $CC) found")
    try:
        path = _build(cc, _FLAGS + _OPENMP)
    except (RuntimeError, subprocess.SubprocessError) as e:
        _state["openmp_error"] = str(e)
        path = _build(cc, _FLAGS)
    lib = ctypes.CDLL(str(path))
    i64p, vp, dbl, cint = (
        ctypes.POINTER(ctypes.c_int64),
        ctypes.c_void_p,
        ctypes.c_double,
        ctypes.c_int,
    )
    lib.alexnet_lrn_openmp.argtypes = []
    lib.alexnet_lrn_openmp.restype = cint
    common = [i64p, cint, dbl, dbl, dbl, cint]
    lib.alexnet_lrn_forward.argtypes = [cint, vp, vp, *common]
    lib.alexnet_lrn_forward.restype = cint
    lib.alexnet_lrn_backward.argtypes = [cint, vp, vp, vp, *common]
    lib.alexnet_lrn_backward.restype = cint
    lib.alexnet_relu_lrn_pool_forward.argtypes = [cint, vp, vp, *common]
    lib.alexnet_relu_lrn_pool_forward.restype = cint
    lib.alexnet_relu_lrn_pool_backward.argtypes = [cint, vp, vp, vp, *common]
    lib.alexnet_relu_lrn_pool_backward.restype = cint
    return lib


def lrn_library() -> ctypes.CDLL | None:
    """The loaded kernel, or None (torch-ops fallback). Built on first call."""
    mode = os.environ.get("ALEXNET_LRN_KERNEL", "auto")
    if mode == "torch":
        return None
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                try:
                    _state["lib"] = _load()
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    _state["lib"], _state["error"] = None, str(e)
    if _state["lib"] is None and mode == "c":
        raise RuntimeError(
            f"ALEXNET_LRN_KERNEL=c, but the LRN kernel did not build: {_state['error']}"
        )
    return _state["lib"]  # type: ignore[return-value]


def kernel_status() -> str:
    """One line for `alexnet bench` and bug reports: which LRN implementation runs."""
    if os.environ.get("ALEXNET_LRN_KERNEL") == "torch":
        return "torch ops (ALEXNET_LRN_KERNEL=torch)"
    lib = lrn_library()
    if lib is None:
        return f"torch ops (C kernel unavailable: {_state.get('error')})"
    if lib.alexnet_lrn_openmp():
        return f"C kernel ({Path(lib._name).name}, OpenMP)"
    why = str(_state.get("openmp_error", "")).splitlines()[-1:] or ["-fopenmp not tried"]
    return f"C kernel ({Path(lib._name).name}, one thread: built without OpenMP: {why[0]})"
