"""ONNX translations of the custom ops (``alexnet.ops``) for ``torch.onnx.export(dynamo=True)``.

``alexnet::lrn`` becomes ONNX's LocalResponseNorm (``LRN``) per tower: Slice the tower's
channels, LRN, Concat. ONNX divides alpha by size, as Caffe does, so the paper's alpha
goes in as ``alpha * size``; its window (floor((size-1)/2) channels below, the rest
above) is the paper model's. ``alexnet::relu_lrn_pool`` becomes Relu, those LRNs and a
3x3 MaxPool of stride 2. onnxruntime's result is checked against PyTorch by
``export_onnx`` (within 1e-4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _lrn(x, size: int, alpha: float, beta: float, k: float, groups: int, channels: int):
    from onnxscript import opset18 as op

    def norm(t):
        return op.LRN(t, alpha=alpha * size, beta=beta, bias=k, size=size)

    if groups == 1:
        return norm(x)
    c = channels // groups

    def tower(g: int):
        ints = [[g * c], [(g + 1) * c], [1]]  # starts, ends, axes
        return op.Slice(x, *(op.Constant(value_ints=v) for v in ints))

    return op.Concat(*(norm(tower(g)) for g in range(groups)), axis=1)


def lrn(x, size: int, alpha: float, beta: float, k: float, groups: int):
    """alexnet::lrn(x, size, alpha, beta, k, groups) in ONNX ops."""
    return _lrn(x, size, alpha, beta, k, groups, int(x.shape[1]))


def relu_lrn_pool(z, alpha: float, k: float, groups: int):
    """alexnet::relu_lrn_pool(z, alpha, k, groups) in ONNX ops (n = 5, beta = 0.75)."""
    from onnxscript import opset18 as op

    from alexnet.ops.fused import BETA, SIZE

    b = _lrn(op.Relu(z), SIZE, alpha, BETA, k, groups, int(z.shape[1]))
    y = op.MaxPool(b, kernel_shape=[3, 3], strides=[2, 2])
    return y[0] if isinstance(y, (tuple, list)) else y  # (Y, Indices): Y


def translations() -> dict[Callable, Callable]:
    """``custom_translation_table`` for ``torch.onnx.export``."""
    import alexnet.ops  # noqa: F401  (registers torch.ops.alexnet.*)

    return {
        torch.ops.alexnet.lrn.default: lrn,
        torch.ops.alexnet.relu_lrn_pool.default: relu_lrn_pool,
    }
