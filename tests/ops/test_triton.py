"""The Triton kernels of alexnet.ops.triton against float64 references, forward and backward
(autograd through the entry points against torch.autograd on the float64 formula): float32,
bf16 and float16, NCHW and channels_last, one or two towers of odd channel counts, window
sizes 3, 5 and 7, odd and even maps for the pool, NaN; and the custom ops running them,
eager, under torch.compile (one graph, the op opaque) and in torch.export.

Without a GPU the kernels run on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1,
set here before the kernels are defined), on tiny shapes: the interpreter runs each program
as numpy operations. With a GPU they run on it, compiled."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch
from torch.nn import functional as F

from alexnet.ops import select
from alexnet.ops.formula import lrn_formula

pytest.importorskip("triton", reason="triton does not import: the Triton kernels are untested")
import alexnet.ops.triton as tk  # noqa: E402  (after the skip)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRET = {"TRITON_INTERPRET": "1"} if DEVICE == "cpu" else {}
if INTERPRET and type(tk.kernels.lrn_forward_kernel).__name__ != "InterpretedFunction":
    pytest.skip(
        "no GPU, and triton was imported before tests/ops/conftest.py could ask for its "
        "interpreter (TRITON_INTERPRET=1)",
        allow_module_level=True,
    )


def _interpreter_runs_tensor_loops() -> bool:
    """Whether this Triton's interpreter runs ``range`` over bounds computed from
    ``tl.program_id``, as the fused tail's kernels do. Triton 3.6's (torch 2.11's) calls
    int() on a 1-element array there, which NumPy 2.4 refuses; Triton 3.8's squeezes it
    first. A GPU compiles the loop and never meets this."""
    from unittest import mock

    import triton
    import triton.language as tl

    with mock.patch.dict("os.environ", INTERPRET):

        @triton.jit
        def loop(out_ptr):
            start = tl.program_id(0)
            for i in range(start, start + 1):
                tl.store(out_ptr + i, i)

        out = torch.zeros(1, dtype=torch.int32)
        try:
            loop[(1,)](out)
        except Exception:  # triton.runtime.errors.InterpreterError
            return False
    return True


# the fused tail's kernels loop over rows: skipped where the interpreter cannot run that
FUSED = pytest.mark.skipif(
    bool(INTERPRET) and not _interpreter_runs_tensor_loops(),
    reason=f"Triton {tk.triton.__version__}'s interpreter cannot run a loop over tensor "
    "bounds with this NumPy (fixed in later Triton); tests/ops/test_triton_compile.py "
    "still compiles the fused kernels",
)


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    """The interpreter reads TRITON_INTERPRET at each launch too; other tests never see it."""
    for k, v in INTERPRET.items():
        monkeypatch.setenv(k, v)


DTYPES = pytest.mark.parametrize(
    "dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"]
)
LAYOUTS = pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
# elementwise tolerance relative to the reference: the output's rounding (half an ulp of
# bf16 / fp16) and float32 arithmetic inside
RTOL = {torch.float32: 2e-5, torch.bfloat16: 8e-3, torch.float16: 1e-3}


def _input(shape, dtype, channels_last, seed=0, scale=20.0) -> torch.Tensor:
    """conv-output-like values, rounded to dtype (the reference sees the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    x = x.to(DEVICE)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _close(out: torch.Tensor, ref: torch.Tensor, dtype) -> None:
    """Elementwise within RTOL of the reference, plus an absolute floor for the terms
    that cancel in a backward (1e-5 of the largest value)."""
    ref = ref.detach().double().cpu()
    atol = 1e-5 * float(ref.abs().max())
    torch.testing.assert_close(out.detach().double().cpu(), ref, rtol=RTOL[dtype], atol=atol)


def _fmt(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


# ---- the LRN


@DTYPES
@LAYOUTS
@pytest.mark.parametrize(
    "shape,size,groups,beta",
    [
        ((2, 2 * 7, 9, 11), 5, 2, 0.75),  # the paper's window, two towers of 7 (block 8)
        ((2, 7, 5, 3), 3, 1, 0.6),  # one tower, the exp2/log2 power
        ((1, 2 * 5, 4, 7), 7, 2, 0.75),  # a window wider than a tower
    ],
    ids=["size5-groups2", "size3-groups1", "size7-groups2"],
)
def test_lrn_matches_float64(dtype, channels_last, shape, size, groups, beta):
    x = _input(shape, dtype, channels_last)
    grad = _input(shape, dtype, channels_last, seed=1, scale=1.0)
    params = (size, 1e-3, beta, 2.0, groups)
    ref_x = x.double().cpu().requires_grad_(True)
    ref = lrn_formula(ref_x, *params)
    ref.backward(grad.double().cpu())
    xx = x.clone().requires_grad_(True)
    out = tk.lrn(xx, *params)
    out.backward(grad)
    assert out.dtype == xx.grad.dtype == dtype
    assert out.is_contiguous(memory_format=_fmt(channels_last))
    assert xx.grad.is_contiguous(memory_format=_fmt(channels_last))
    _close(out, ref, dtype)
    _close(xx.grad, ref_x.grad, dtype)


def test_lrn_position_blocks_and_in_place(monkeypatch):
    """Many programs per tower (a tile of 8 positions: 99 positions in 13 blocks, the last
    one partial), and out = x (torch.ops.alexnet.lrn_ writes into its input)."""
    monkeypatch.setattr(tk, "TILE", 64)
    x = _input((2, 2 * 7, 9, 11), torch.float32, False)
    ref = lrn_formula(x.double().cpu(), 5, 1e-3, 0.75, 2.0, 2)
    _close(tk.lrn(x, 5, 1e-3, 0.75, 2.0, 2), ref, torch.float32)
    tk.lrn_forward(x, x, 5, 1e-3, 0.75, 2.0, 2)
    _close(x, ref, torch.float32)


# ---- ReLU -> LRN -> max-pool 3/2


def _relu_lrn_pool_reference(z: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """max_pool2d of the float64 LRN of relu(z), the LRN's values rounded to z's dtype first
    as the kernel and the three layers do (so both sides see the same ties), its gradient
    not (the kernel keeps it in float32); and z's leaf."""
    z64 = z.double().cpu().requires_grad_(True)
    b = lrn_formula(torch.relu(z64), 5, 1e-3, 0.75, 2.0, groups)
    b = b + (b.to(z.dtype).double() - b).detach()
    return F.max_pool2d(b, 3, 2), z64


def _check_relu_lrn_pool(z: torch.Tensor, groups: int) -> None:
    dtype = z.dtype
    ref, z64 = _relu_lrn_pool_reference(z, groups)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g = g.to(dtype).double()  # the kernel's incoming gradient, exactly
    ref.backward(g)
    zz = z.clone().requires_grad_(True)
    out = tk.relu_lrn_pool(zz, 1e-3, 2.0, groups)
    fmt = torch.channels_last if z.is_contiguous(memory_format=torch.channels_last) else None
    out.backward(g.to(dtype).to(DEVICE).contiguous(memory_format=fmt or torch.contiguous_format))
    assert out.shape == ref.shape and out.dtype == zz.grad.dtype == dtype
    if fmt is not None:
        assert out.is_contiguous(memory_format=fmt) and zz.grad.is_contiguous(memory_format=fmt)
    # the maximum of values rounded alike: float32's rounding only
    torch.testing.assert_close(out.double().cpu(), ref.detach(), rtol=2e-6, atol=0)
    _close(zz.grad, z64.grad, dtype)


@DTYPES
@LAYOUTS
@FUSED
def test_relu_lrn_pool_matches_float64(dtype, channels_last):
    _check_relu_lrn_pool(_input((1, 2 * 5, 7, 9), dtype, channels_last), groups=2)


@LAYOUTS
@pytest.mark.parametrize(
    "shape,groups",
    [
        ((1, 7, 10, 8), 1),  # even height and width: the last row and column in no window
        ((2, 2 * 3, 3, 3), 2),  # one window
        ((1, 2 * 5, 7, 13), 2),  # 3 output rows in chunks of 2: a chunk starts mid-map
    ],
)
@FUSED
def test_relu_lrn_pool_shapes_and_row_chunks(monkeypatch, channels_last, shape, groups):
    monkeypatch.setattr(tk, "ROWS", 2)
    _check_relu_lrn_pool(_input(shape, torch.float32, channels_last), groups)


@pytest.mark.parametrize(
    "dtype,channels_last", [(torch.bfloat16, True), (torch.float32, False)], ids=["bf16", "fp32"]
)
@FUSED
def test_relu_lrn_pool_int8_argmax_gives_the_same_numbers(monkeypatch, dtype, channels_last):
    """SAVE_ARGMAX: the forward stores each window's maximum (int8), the backward reads it
    instead of finding it again; the same output and gradient, bit for bit."""
    monkeypatch.setattr(tk, "ROWS", 2)  # chunks start mid-map
    z = _input((1, 2 * 5, 9, 7), dtype, channels_last)
    z[0, 1, 2:5, 2:5] = z[0, 1, 3, 3]  # ties, in the first tower
    z[0, 6, 4, 1] = float("nan")  # in the second
    g = _input((1, 10, 4, 3), dtype, channels_last, seed=1, scale=1.0)
    runs = []
    for save in (False, True):
        monkeypatch.setattr(tk, "SAVE_ARGMAX", save)
        zz = z.clone().requires_grad_(True)
        y = tk.relu_lrn_pool(zz, 1e-3, 2.0, 2)
        y.backward(g)
        runs.append((y, zz.grad))
    (y0, g0), (y1, g1) = runs
    assert torch.equal(y0.isnan(), y1.isnan()) and torch.equal(y0.nan_to_num(), y1.nan_to_num())
    assert torch.equal(g0.isnan(), g1.isnan()) and torch.equal(g0.nan_to_num(), g1.nan_to_num())


@FUSED
def test_relu_lrn_pool_nan_like_the_c_kernel():
    """A NaN in z: the same NaN outputs and the same gradient as the CPU op (ReLU keeps
    NaN, the pool takes the last NaN of a window), through the three layers' rule."""
    z = _input((1, 2 * 5, 7, 9), torch.float32, True)
    z[0, 3, 2, 4] = float("nan")
    g = torch.randn(1, 10, 3, 4, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    zz = z.clone().requires_grad_(True)
    out = tk.relu_lrn_pool(zz, 1e-3, 2.0, 2)
    out.backward(g)
    zr = z.cpu().clone().requires_grad_(True)
    ref = F.max_pool2d(lrn_formula(torch.relu(zr), 5, 1e-3, 0.75, 2.0, 2), 3, 2)
    ref.backward(g.cpu())
    assert torch.isnan(out).any() and torch.equal(torch.isnan(out).cpu(), torch.isnan(ref))
    torch.testing.assert_close(out.cpu(), ref.detach(), rtol=1e-6, atol=0, equal_nan=True)
    torch.testing.assert_close(zz.grad.cpu(), zr.grad, rtol=1e-5, atol=1e-7, equal_nan=True)


# ---- the custom ops on the Triton kernels


@pytest.fixture
def triton_ops(monkeypatch):
    """The custom ops and the modules choose "triton" for this test's tensors (CPU tensors
    in the interpreter without a GPU), and count the kernel launches."""
    import alexnet.ops.fused
    import alexnet.ops.lrn
    import alexnet.ops.nn

    def choose(x):
        return "triton" if x.dtype in tk.DTYPES else select.implementation(x)

    for mod in (alexnet.ops.lrn, alexnet.ops.fused, alexnet.ops.nn, alexnet.ops.nn):
        monkeypatch.setattr(mod, "implementation", choose)
    calls: dict[str, int] = {}
    for name in ("lrn_forward", "lrn_backward", "relu_lrn_pool_forward", "relu_lrn_pool_backward"):
        fn = getattr(tk, name)

        def counted(*args, _fn=fn, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return _fn(*args)

        monkeypatch.setattr(tk, name, counted)
    return calls


def _tail(groups=2):
    from alexnet.ops.nn import LocalResponseNorm, ReLULRNPool

    lrn = LocalResponseNorm(5, 1e-3, 0.75, 2.0, groups=groups)
    return ReLULRNPool(torch.nn.ReLU(), lrn, torch.nn.MaxPool2d(3, 2))


@FUSED
def test_custom_ops_run_the_triton_kernels(triton_ops):
    z = _input((1, 2 * 3, 5, 7), torch.bfloat16, True).requires_grad_(True)
    y = torch.ops.alexnet.relu_lrn_pool(z * 1, 1e-3, 2.0, 2)
    y.float().sum().backward()
    x = _input((1, 2 * 3, 5, 6), torch.float16, False)
    b = torch.ops.alexnet.lrn(x, 5, 1e-3, 0.75, 2.0, 2)
    torch.ops.alexnet.lrn_(x, 5, 1e-3, 0.75, 2.0, 2)
    assert torch.equal(x, b)
    assert triton_ops == {"relu_lrn_pool_forward": 1, "relu_lrn_pool_backward": 1, "lrn_forward": 2}
    ref = tk.relu_lrn_pool(z.detach(), 1e-3, 2.0, 2)
    assert torch.equal(y, ref)


@FUSED
def test_compiled_tail_is_one_graph_around_the_op(triton_ops):
    """torch.compile keeps the op (inductor would see an opaque call): one graph, no
    break, forward and backward the Triton kernels, the eager numbers."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, _inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    tail = _tail()
    z = _input((1, 2 * 3, 5, 7), torch.float32, True)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(tail)(z)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    compiled = torch.compile(tail, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep))
    zz = z.clone().requires_grad_(True)
    y = compiled(zz)
    y.sum().backward()
    targets = {str(n.target) for gm in graphs for n in gm.graph.nodes}
    assert {"alexnet.relu_lrn_pool.default", "alexnet.relu_lrn_pool_backward.default"} <= targets
    assert triton_ops["relu_lrn_pool_forward"] >= 1 and triton_ops["relu_lrn_pool_backward"] == 1
    ze = z.clone().requires_grad_(True)
    ye = tail(ze)
    ye.sum().backward()
    assert torch.equal(y, ye) and torch.equal(zz.grad, ze.grad)


@FUSED
def test_exported_program_calls_the_op(triton_ops):
    from alexnet.ops.nn import LocalResponseNorm

    model = torch.nn.Sequential(LocalResponseNorm(3, 1e-3, 0.75, 2.0, groups=2), _tail())
    x = _input((1, 2 * 3, 7, 7), torch.float32, False)
    ep = torch.export.export(model, (x,))
    targets = [str(n.target) for n in ep.graph.nodes]
    assert "alexnet.lrn.default" in targets and "alexnet.relu_lrn_pool.default" in targets
    before = dict(triton_ops)
    y = ep.module()(x)
    assert triton_ops["lrn_forward"] == before.get("lrn_forward", 0) + 1
    assert triton_ops["relu_lrn_pool_forward"] == before.get("relu_lrn_pool_forward", 0) + 1
    assert torch.equal(y, model(x))


# ---- which implementation runs where


def test_select_picks_triton_for_cuda_tensors(monkeypatch):
    def cuda(dtype):
        return types.SimpleNamespace(device=torch.device("cuda"), dtype=dtype)

    monkeypatch.delenv("ALEXNET_LRN_KERNEL", raising=False)
    monkeypatch.setattr(select, "TRITON_FOUND", True)
    for dtype in tk.DTYPES:
        assert select.implementation(cuda(dtype)) == "triton"
    assert select.implementation(cuda(torch.float64)) == "torch"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert select.implementation(cuda(torch.bfloat16)) == "triton"  # the op, not the formula
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    assert select.implementation(cuda(torch.bfloat16)) == "formula"  # the old CUDA paths
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "auto")
    monkeypatch.setattr(select, "TRITON_FOUND", False)
    assert select.implementation(cuda(torch.bfloat16)) == "formula"
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "triton")
    with pytest.raises(RuntimeError, match="triton is not installed"):
        select.implementation(cuda(torch.bfloat16))


def test_cuda_tensors_compile_and_export_to_the_ops(monkeypatch):
    """On CUDA tensors (fake ones: no GPU needed) torch.compile traces the LRN and the fused
    tail as the custom ops, in one graph, where it used to trace the formula for inductor;
    torch.export too. ALEXNET_LRN_KERNEL=torch gives the formula back."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from alexnet.ops.nn import LocalResponseNorm

    monkeypatch.setattr(select, "TRITON_FOUND", True)
    model = torch.nn.Sequential(LocalResponseNorm(5, 1e-3, 0.75, 2.0, groups=2), _tail())

    def traced() -> list[str]:
        graphs = []

        def backend(gm, _inputs):
            graphs.append(gm)
            return gm.forward

        torch._dynamo.reset()
        with FakeTensorMode(allow_non_fake_inputs=True):
            x = torch.empty(2, 8, 9, 9, device="cuda", dtype=torch.bfloat16)
            torch.compile(model, backend=backend, fullgraph=True)(x)
        assert len(graphs) == 1
        return [str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"]

    assert traced() == ["alexnet.lrn", "alexnet.relu_lrn_pool"]
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(2, 8, 9, 9, device="cuda", dtype=torch.bfloat16)
        ep = torch.export.export(model, (x,))
    targets = [str(n.target) for n in ep.graph.nodes]
    assert "alexnet.lrn.default" in targets and "alexnet.relu_lrn_pool.default" in targets
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    assert not any(t.startswith("alexnet.") for t in traced())


def test_import_alexnet_leaves_triton_unimported():
    """``import alexnet`` and building a model do not import triton; a CPU model's forward
    and backward do not import the kernels (torch's custom-op dispatch imports torch._dynamo
    on the first call, and that imports triton on its own)."""
    code = (
        "import sys, torch, alexnet\n"
        "from alexnet.models import create_model\n"
        "m = create_model('alexnet', num_classes=10, width=0.125)\n"
        "assert 'triton' not in sys.modules, 'triton imported'\n"
        "m(torch.randn(1, 3, 227, 227)).sum().backward()\n"
        "assert 'alexnet.ops.triton' not in sys.modules, 'kernels imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
