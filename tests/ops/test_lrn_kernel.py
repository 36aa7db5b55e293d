"""The fused C kernel of the LRN (alexnet/ops/csrc/lrn.c, loaded by alexnet.ops._loader):
against the float64 loop of the paper's formula, against the torch-ops path, across
layouts, dtypes, window sizes, towers and thread counts; in-place inference; and the
fallback when no compiler is there."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from alexnet.ops import _loader as _kernels
from alexnet.ops.nn import LocalResponseNorm, local_response_norm, local_response_norm_reference

needs_kernel = pytest.mark.skipif(
    _kernels.lrn_library() is None, reason="no C compiler: the torch-ops path runs"
)


def test_kernel_builds_where_a_compiler_exists():
    if shutil.which("cc") or shutil.which("gcc"):
        assert _kernels.lrn_library() is not None, _kernels.kernel_status()
        assert _kernels.kernel_status().startswith("C kernel")


def _forward_backward(x64, g64, dtype, channels_last, **kw):
    x = x64.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = local_response_norm(x, **kw)
    y.backward(g64.to(dtype))
    return y, x.grad


@needs_kernel
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.bfloat16, 1.2e-2)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "shape,size,groups,beta",
    [
        ((3, 96, 7, 9), 5, 2, 0.75),  # the paper's layer, two towers
        ((2, 16, 17, 19), 5, 1, 0.75),  # H*W = 323 > one NCHW block of 256
        ((2, 12, 3, 5), 4, 2, 0.75),  # even window (lo 1, hi 2)
        ((2, 6, 4, 4), 7, 2, 0.5),  # window wider than a tower, the powf path
        ((1, 4, 2, 3), 3, 1, 1.0),
    ],
)
def test_matches_float64_reference(dtype, tol, channels_last, shape, size, groups, beta):
    torch.manual_seed(0)
    x64 = torch.randn(shape, dtype=torch.float64).mul(30).relu()
    g64 = torch.randn(shape, dtype=torch.float64)
    kw = dict(size=size, alpha=1e-3, beta=beta, k=2.0, groups=groups)
    xr = x64.clone().requires_grad_(True)
    yr = local_response_norm_reference(xr, **kw)
    yr.backward(g64)
    y, gx = _forward_backward(x64, g64, dtype, channels_last, **kw)
    assert y.dtype == gx.dtype == dtype
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert ((y.double() - yr).abs().max() / yr.abs().max()).item() < tol
    assert ((gx.double() - xr.grad).abs().max() / xr.grad.abs().max()).item() < tol


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_kernel_agrees_with_the_torch_ops_path(monkeypatch, dtype, channels_last):
    torch.manual_seed(1)
    x64 = torch.randn(4, 96, 13, 13, dtype=torch.float64).mul(20).relu()
    g64 = torch.randn_like(x64)
    y_c, g_c = _forward_backward(x64, g64, dtype, channels_last, groups=2)
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    y_t, g_t = _forward_backward(x64, g64, dtype, channels_last, groups=2)
    tol = 1e-5 if dtype == torch.float32 else 1.6e-2
    torch.testing.assert_close(y_c.float(), y_t.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(g_c.float(), g_t.float(), rtol=tol, atol=tol * 1e-2)


@needs_kernel
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_bits_for_any_number_of_threads(channels_last):
    x = torch.randn(8, 96, 27, 27).relu()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    outs = []
    before = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            xi = x.clone().requires_grad_(True)
            y = LocalResponseNorm(groups=2)(xi)
            y.backward(g)
            outs.append((y.detach(), xi.grad))
    finally:
        torch.set_num_threads(before)
    for y, gx in outs[1:]:
        assert torch.equal(y, outs[0][0]) and torch.equal(gx, outs[0][1])


def test_nan_and_inf_propagate():
    x = torch.ones(1, 8, 2, 2)
    x[0, 3, 0, 0] = float("nan")
    x[0, 6, 1, 1] = float("inf")
    for dtype in (torch.float32, torch.bfloat16):
        y = LocalResponseNorm()(x.to(dtype))
        assert torch.isnan(y[0, 3, 0, 0]) and torch.isnan(y[0, 1:6, 0, 0]).all()
        assert not torch.isnan(y[0, 0, 0, 0])  # outside the window of the NaN


@pytest.mark.parametrize("channels_last", [False, True])
def test_inplace_only_when_no_gradient_is_needed(channels_last):
    x = torch.randn(2, 96, 9, 9).relu()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = LocalResponseNorm(groups=2)(x)
    layer = LocalResponseNorm(groups=2, inplace=True)
    assert "inplace=True" in repr(layer)
    with torch.no_grad():
        xi = x.clone()
        y = layer(xi)
    assert y.data_ptr() == xi.data_ptr() and torch.equal(y, expected)
    xg = x.clone().requires_grad_(True)
    y = layer(xg)  # autograd recording: a new tensor, the input kept for backward
    assert y.data_ptr() != xg.data_ptr() and torch.equal(xg.detach(), x)
    y.sum().backward()
    assert xg.grad is not None


def test_failed_build_falls_back_or_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(_kernels, "_state", {})
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")
    assert _kernels.lrn_library() is None
    assert "torch ops (C kernel unavailable" in _kernels.kernel_status()
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(
        LocalResponseNorm()(x), local_response_norm_reference(x), rtol=1e-6, atol=1e-6
    )
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "c")
    with pytest.raises(RuntimeError, match="did not build"):
        _kernels.lrn_library()
    assert not list((tmp_path / "kernels").glob("*.tmp"))  # no half-written library left


def test_torch_path_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    assert _kernels.lrn_library() is None
    assert _kernels.kernel_status() == "torch ops (ALEXNET_LRN_KERNEL=torch)"


def test_kernel_shares_pytorchs_openmp_runtime():
    """One libgomp in the process: the kernel's threads are PyTorch's own."""
    lib = _kernels.lrn_library()
    if lib is None or not lib.alexnet_lrn_openmp():
        pytest.skip(f"no OpenMP build here: {_kernels.kernel_status()}")
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("no /proc/self/maps to list the loaded libraries")
    LocalResponseNorm(groups=2)(torch.randn(4, 96, 27, 27))
    with open("/proc/self/maps") as maps:
        gomps = {line.split()[-1] for line in maps if "libgomp" in line}
    assert len(gomps) == 1, gomps


@needs_kernel
def test_without_openmp_it_builds_for_one_thread(monkeypatch, tmp_path):
    monkeypatch.setattr(_kernels, "_state", {})
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_kernels, "_OPENMP", ("-fno-such-openmp-flag",))
    # -O0: what is tested is the fallback, not the optimiser (1 s where -O3 takes 11 s)
    assert _kernels._FLAGS[0] == "-O3"
    monkeypatch.setattr(_kernels, "_FLAGS", ("-O0", *_kernels._FLAGS[1:]))
    lib = _kernels.lrn_library()
    assert lib is not None and not lib.alexnet_lrn_openmp()
    assert "one thread: built without OpenMP" in _kernels.kernel_status()
    x64 = torch.randn(2, 96, 9, 9, dtype=torch.float64).mul(30).relu()
    y = LocalResponseNorm(groups=2, alpha=1e-3)(x64.float())
    yr = local_response_norm_reference(x64, alpha=1e-3, groups=2)
    torch.testing.assert_close(y.double(), yr, rtol=2e-6, atol=2e-6)


@needs_kernel
def test_loading_the_kernels_keeps_subnormal_floats():
    """The library is compiled with -ffast-math but not linked with it: linking would add
    crtfastmath.o, whose constructor sets flush-to-zero in the whole process on load."""
    import subprocess
    import sys

    code = (
        "import numpy as np, torch\n"
        "from alexnet.ops._loader import lrn_library\n"
        "assert lrn_library() is not None\n"
        "tiny = np.float32(1e-40)\n"
        "assert tiny * np.float32(1.0) != 0, 'numpy float32 subnormal flushed'\n"
        "assert (torch.tensor([1e-40]) * 1.0).item() != 0, 'torch subnormal flushed'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_processes_that_need_the_same_build_wait_for_one(monkeypatch, tmp_path):
    """Three builders at once (torchrun ranks, test workers): one runs the compiler (both
    sources side by side, then the link), the others wait on its lock and take its file."""
    import time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path))
    calls = []

    def compile_slowly(cc, commands):
        calls.append([args[args.index("-o") + 1].rsplit(".", 1)[-1] for args in commands])
        time.sleep(0.3)
        for args in commands:
            Path(args[args.index("-o") + 1]).write_bytes(b"built")

    monkeypatch.setattr(_kernels, "_run_all", compile_slowly)
    with ThreadPoolExecutor(3) as pool:  # flock: each open() is its own lock holder
        paths = list(pool.map(lambda _: _kernels._build("cc", _kernels._FLAGS), range(3)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == b"built"
    assert calls == [["o", "o"], ["tmp"]]


def test_a_file_system_without_locks_still_builds(monkeypatch, tmp_path):
    """flock failing with ENOLCK (some FUSE and old NFS mounts): the build goes on unlocked."""
    import errno
    import fcntl
    from pathlib import Path

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    def compile_at_once(cc, commands):
        for args in commands:
            Path(args[args.index("-o") + 1]).write_bytes(b"built")

    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(_kernels, "_run_all", compile_at_once)
    assert _kernels._build("cc", _kernels._FLAGS).read_bytes() == b"built"
