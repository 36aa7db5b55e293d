"""The Triton kernels compile for an H100 (sm_90a) on a machine without one, with the blocks
and warps the launchers pick for the tests' shapes, the paper's conv2 tail and conv1's at
width 1/8: Triton's compiler and ptxas run on the CPU (tests/ops/triton_compile.py, in a
fresh process so that no TRITON_INTERPRET of the interpreter tests reaches it). Triton
3.8's compiler asserted on a gather the interpreter ran fine; this is where that shows."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("triton_compile.py")


def _nvidia_backend() -> str | None:
    """Why Triton cannot compile for NVIDIA here, or None."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    ptxas = Path(importlib.util.find_spec("triton").origin).parent / "backends/nvidia/bin/ptxas"
    return None if ptxas.exists() else f"no ptxas in triton's NVIDIA backend ({ptxas})"


@pytest.mark.skipif(_nvidia_backend() is not None, reason=str(_nvidia_backend()))
def test_kernels_compile_for_an_h100(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # compiled here, not found in a cache
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("compiled") == 10, proc.stdout
