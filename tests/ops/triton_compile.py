"""Compiles the Triton kernels of alexnet.ops.triton for an H100 (sm_90a) without a GPU:
Triton's front end, its GPU passes and ptxas, all on the CPU. The interpreter runs the
kernels' Python; this catches what only the compiler rejects (shapes that are not
constexpr, layouts, register spills).

    python tests/ops/triton_compile.py [--real] [--ptxas]

--real: every shape of SHAPES and MORE_SHAPES in bf16 and float32 (by default: SHAPES in
bf16); --ptxas: each kernel's registers and spills as ptxas reports them. Run by
tests/ops/test_triton_compile.py in a fresh process (TRITON_INTERPRET unset).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import alexnet.ops.triton as tk
from alexnet.ops.triton import kernels

SCALARS = {"alpha", "beta", "k"}


def compile_for_h100(fn, dtype: str, const: dict, num_warps: int):
    """fn compiled for sm_90a with these constexprs, every pointer of dtype."""
    sig = {}
    for name in fn.arg_names:
        if name in const:
            sig[name] = "constexpr"
        elif name == "idx_ptr":
            sig[name] = "*i8"  # the pool's argmax (unread without STORE/LOAD_ARGMAX)
        elif name.endswith("_ptr"):
            sig[name] = "*" + dtype
        else:
            sig[name] = "fp32" if name in SCALARS else "i32"
    consts = {(fn.arg_names.index(k),): v for k, v in const.items()}
    src = ASTSource(fn=fn, signature=sig, constexprs=consts)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def ptxas_report(ptx: str) -> str:
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/ptxas")
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        proc = subprocess.run(
            [ptxas, "-v", "--gpu-name", "sm_90a", f.name, "-o", os.devnull],
            capture_output=True,
            text=True,
        )
    lines = (proc.stdout + proc.stderr).splitlines()
    return "; ".join(s.split(":", 1)[-1].strip() for s in lines if "Used" in s or "spill" in s)


# (name, z's shape, groups): what the launchers would launch for these, compiled
SHAPES = [
    ("tests' tail", (2, 10, 7, 9), 2),  # tests/ops/test_triton.py
    ("conv1 at width 1/8", (256, 12, 55, 55), 2),  # 6 maps a tower: BLOCK_C 8, BLOCK_X 64
    ("conv2", (256, 256, 27, 27), 2),  # 128 maps a tower, 27 wide
]
MORE_SHAPES = [("conv1", (256, 96, 55, 55), 2), ("conv2 at width 1/8", (256, 32, 27, 27), 2)]


def cases(shapes):
    """(what, kernel, constexprs and warps) for each shape: the LRN (first shape only, both
    FLAT settings) and the fused tail's forward and backward."""
    _, shape, groups = shapes[0]
    _, meta = tk.lrn_config(shape, groups, 5, 0.75)
    yield "lrn forward", kernels.lrn_forward_kernel, dict(meta, FLAT=True)
    yield "lrn backward", kernels.lrn_backward_kernel, dict(meta, FLAT=False)
    for i, (name, shape, groups) in enumerate(shapes):
        for backward in (False, True):
            fn = (
                kernels.relu_lrn_pool_backward_kernel
                if backward
                else kernels.relu_lrn_pool_forward_kernel
            )
            what = f"relu_lrn_pool {'backward' if backward else 'forward'}, {name}"
            meta = tk.pool_config(shape, groups, backward)[1]
            switch = "LOAD_ARGMAX" if backward else "STORE_ARGMAX"
            yield what, fn, dict(meta, **{switch: False})
            if i == 0:  # alexnet.ops.triton.SAVE_ARGMAX
                yield what + ", int8 argmax", fn, dict(meta, **{switch: True})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true")
    p.add_argument("--ptxas", action="store_true")
    args = p.parse_args()
    shapes = SHAPES + MORE_SHAPES if args.real else SHAPES
    for name, fn, meta in cases(shapes):
        meta = dict(meta)
        warps = meta.pop("num_warps")
        for dtype in ("bf16", "fp32") if args.real else ("bf16",):
            ck = compile_for_h100(fn, dtype, meta, warps)
            assert "cubin" in ck.asm, name
            report = ptxas_report(ck.asm["ptx"]) if args.ptxas else ""
            print(f"compiled {name} {dtype} ({warps} warps) {report}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
