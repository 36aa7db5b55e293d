"""alexnet.machine: the CPU's name and instruction sets, the measured matmul peak."""

from __future__ import annotations

import torch

from alexnet import machine


def test_describe_names_the_cpu_and_its_instruction_sets(monkeypatch):
    cpuinfo = {"model name": "Test CPU 9000", "flags": "fpu avx2 avx512f avx512_bf16 amx_bf16"}
    monkeypatch.setattr(machine, "_cpuinfo", lambda: cpuinfo)
    assert machine.cpu_isa() == ["AVX2", "AVX-512", "AVX512-BF16", "AMX-BF16"]
    line = machine.describe(torch.device("cpu"))
    assert line.startswith("Test CPU 9000 (AVX2, AVX-512, AVX512-BF16, AMX-BF16)")
    assert f"{torch.get_num_threads()} threads" in line
    monkeypatch.setattr(machine, "_cpuinfo", lambda: {"flags": "fpu avx2"})
    assert "(AVX2, no AMX)" in machine.describe(torch.device("cpu"))


def test_this_machine_has_a_name():
    assert machine.cpu_model()


def test_matmul_peak_is_flops_per_second():
    for dtype in (torch.float32, torch.bfloat16):
        peak = machine.matmul_peak(torch.device("cpu"), dtype, size=64, seconds=0.01)
        assert 1e6 < peak < 1e15
