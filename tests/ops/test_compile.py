"""torch.compile of the paper's model: the eager outputs and gradients, one graph with no
breaks, and the custom ops (torch.ops.alexnet.*) inside it, forward and backward.

The graphs are recorded by a backend that runs them eagerly after AOT autograd (the
fake implementations, functionalization and the registered backward all run, at batch
2 in seconds); inductor's code generation takes minutes on 2 cores and is left to
``alexnet bench --compile``, except for one small module."""

from __future__ import annotations

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch.fx import GraphModule

from alexnet.models import create_model
from alexnet.ops import _loader as _kernels
from alexnet.ops.nn import LocalResponseNorm, ReLULRNPool

needs_kernel = pytest.mark.skipif(
    _kernels.lrn_library() is None, reason="no C compiler: the three layers run"
)


class Recorder:
    """A torch.compile backend that keeps the forward and backward ATen graphs."""

    def __init__(self) -> None:
        self.graphs: list[GraphModule] = []

        def keep(gm: GraphModule, _inputs):
            self.graphs.append(gm)
            return make_boxed_func(gm.forward)

        self.backend = aot_autograd(fw_compiler=keep, bw_compiler=keep)

    def targets(self) -> set[str]:
        return {str(n.target) for gm in self.graphs for n in gm.graph.nodes}


def _model(**kw):
    """The paper's network at width 1/8: two towers of 6 maps at conv1, both LRNs and their
    fused tails, the 227-pixel input; a full-size model compiles the same graph."""
    torch.manual_seed(0)
    return create_model("alexnet", num_classes=10, dropout=0.0, width=0.125, **kw)


def _no_breaks(model, x) -> None:
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


@needs_kernel
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_compiled_training_step_equals_eager_and_keeps_the_ops(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = _model().to(memory_format=fmt)
    x = torch.randn(2, 3, 227, 227).contiguous(memory_format=fmt)
    _no_breaks(model, x)
    rec = Recorder()
    compiled = torch.compile(model, backend=rec.backend, fullgraph=True)
    y = compiled(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    y_ref = model(x)
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    targets = rec.targets()
    assert "alexnet.relu_lrn_pool.default" in targets
    assert "alexnet.relu_lrn_pool_backward.default" in targets


@needs_kernel
def test_bf16_autocast_and_inference_mode():
    model = _model(pool_before_lrn=True).eval()  # CaffeNet's order: the LRN op on its own
    x = torch.randn(2, 3, 227, 227)
    rec = Recorder()
    compiled = torch.compile(model, backend=rec.backend, fullgraph=True)
    with torch.inference_mode():
        y = compiled(x)  # in place: the LRN overwrites the pool's output
        torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-6)
    assert "alexnet.lrn_.default" in str([gm.code for gm in rec.graphs])
    paper = _model()
    compiled = torch.compile(paper, backend=Recorder().backend, fullgraph=True)
    with torch.autocast("cpu", torch.bfloat16):
        y = compiled(x)
        y_ref = paper(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, rtol=1e-2, atol=1e-2)


@needs_kernel
def test_inductor_calls_the_fused_kernel():
    tail = ReLULRNPool(torch.nn.ReLU(), LocalResponseNorm(groups=2), torch.nn.MaxPool2d(3, 2))
    z = torch.randn(2, 16, 9, 9).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    y = torch.compile(tail, fullgraph=True)(z)
    assert torch.equal(y, tail(z)) and y.is_contiguous(memory_format=torch.channels_last)


def test_a_hook_on_the_lrn_is_compiled_as_the_three_layers():
    model = _model()
    seen = []
    model.features.tail1.lrn.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    rec = Recorder()
    torch.compile(model, backend=rec.backend)(torch.randn(2, 3, 227, 227))
    assert seen == [(2, 12, 55, 55)]
    forward = [str(n.target) for n in rec.graphs[0].graph.nodes]
    assert forward.count("alexnet.lrn.default") == 1  # conv1's tail: the three layers
    assert forward.count("alexnet.relu_lrn_pool.default") == int(_kernels.lrn_library() is not None)
