"""What a benchmark ran on: the processor or card, the instruction sets that matter for
these models, and the measured matmul peak per dtype (``alexnet bench`` prints all three,
and each row's share of the peak of its dtype).

The peak is measured, not looked up: the best FLOP/s of a square ``torch.mm`` (2048 on
the CPU, 8192 on CUDA) over about half a second, in the process and with the threads the
benchmark uses. On the 2-core AMD EPYC (Zen 4, AVX512-BF16) this project is developed
on, torch 2.14.1: 45-75 GFLOP/s in float32 and 100-210 in bf16 (a shared machine: the
figure of the same run is what counts). On an H200 (torch 2.11): 780 TFLOP/s in bf16.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

__all__ = ["cpu_isa", "cpu_model", "describe", "matmul_peak", "synchronize"]

# /proc/cpuinfo flag -> name, in the order printed: what oneDNN's convolutions and
# matmuls dispatch on for float32 and bf16
ISA_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX512-BF16",
    "avx512_fp16": "AVX512-FP16",
    "amx_bf16": "AMX-BF16",
}
AMP_DTYPES = {"off": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def cpu_model() -> str:
    """The processor's name ("AMD EPYC"), from /proc/cpuinfo or the platform."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_isa() -> list[str]:
    """The instruction sets of ``ISA_FLAGS`` this CPU has, by name."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [name for flag, name in ISA_FLAGS.items() if flag in flags]


def describe(device: torch.device) -> str:
    """One line: the card, or the CPU with its instruction sets and PyTorch's threads."""
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs)"
    isa = cpu_isa()
    amx = "" if "AMX-BF16" in isa else ", no AMX"
    return f"{cpu_model()} ({', '.join(isa) or 'no AVX2'}{amx}), {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op off CUDA): before reading a host clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int | None = None, seconds: float = 0.5
) -> float:
    """FLOP/s of the fastest of repeated (size x size) @ (size x size) ``torch.mm``.

    ``size`` None: 8192 on CUDA; on the CPU 2048, or half that until one product takes at
    most ``seconds`` / 2 (to 256) where the dtype has no fast path (bfloat16 without
    AVX512-BF16 or AMX: 0.8 GFLOP/s, one 2048 product 21 s on a 2-core AMD EPYC)."""
    g = torch.Generator().manual_seed(0)
    n = size or (8192 if device.type == "cuda" else _cpu_size(dtype, seconds, g))
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    matmul = torch.backends.cuda.matmul
    tf32 = matmul.allow_tf32
    # float32 on CUDA: TF32 where cuDNN's convolutions use it (PyTorch's default), as the
    # models' convolutions do; a strict float32 mm (51 TFLOP/s on an H200) would put
    # them above 100% of the peak
    matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 if device.type == "cuda" else tf32
    try:
        torch.mm(a, b)  # warm-up: library set-up, first-touch of the output
        synchronize(device)
        best, spent = float("inf"), 0.0
        while spent < seconds or best == float("inf"):
            t0 = time.perf_counter()
            torch.mm(a, b)
            synchronize(device)
            dt = time.perf_counter() - t0
            best, spent = min(best, dt), spent + dt
    finally:
        matmul.allow_tf32 = tf32
    return 2.0 * n**3 / best


def _cpu_size(dtype: torch.dtype, seconds: float, g: torch.Generator) -> int:
    a = torch.randn(512, 512, generator=g).to(dtype)
    torch.mm(a, a)
    t0 = time.perf_counter()
    torch.mm(a, a)
    t512 = time.perf_counter() - t0
    n = 2048
    while n > 256 and t512 * (n / 512) ** 3 > seconds / 2:
        n //= 2
    return n
