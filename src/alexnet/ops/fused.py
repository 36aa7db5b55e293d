"""``torch.ops.alexnet.relu_lrn_pool`` (and ``relu_lrn_pool_backward``): conv1's and
conv2's tail, ReLU -> LRN -> max-pool 3/2 (§3.3, §3.4), as one custom operator.

    relu_lrn_pool(Tensor z, float alpha, float k, int groups) -> Tensor
        = max_pool2d(lrn(relu(z), size=5, alpha, beta=0.75, k, groups), 3, stride=2)

The paper's n = 5 and beta = 0.75 are built in (``csrc/lrn_pool.c`` is compiled for
those only; other constants run the three layers, ``alexnet.ops.nn.ReLULRNPool``).
z: (N, C, H, W) with H, W >= 3, contiguous or channels_last; the output
(N, C, (H-3)//2+1, (W-3)//2+1) has z's dtype and memory format. On the CPU in float32
and bf16 the C kernel reads z once and writes only the pooled output; its backward
recomputes each row's LRN to find each window's maximum again, so the LRN output, the
pool's int64 indices and the intermediate gradients (37 MB each after conv1 at batch 64
in bf16) are never written. On CUDA (float32, bf16, float16) the Triton kernels of
``alexnet.ops.triton`` do the same. Elsewhere (other dtypes, no C compiler, no triton,
``ALEXNET_LRN_KERNEL=torch``) the op runs the three layers' ops, with the same results.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from alexnet.ops._loader import lrn_library

from ._kernel import ANY_LAYOUT, call, dense, memory_format, pool_dims
from .lrn import check_input, forward_into
from .select import implementation, triton_kernels

__all__: list[str] = []  # use torch.ops.alexnet.relu_lrn_pool / relu_lrn_pool_backward

SIZE, BETA = 5, 0.75  # the LRN constants the fused op is built for


def pooled_like(z: Tensor, groups: int) -> Tensor:
    """An empty pooled output for z (N, C, H, W), in z's dtype, device and format."""
    check_input(z, groups)
    n, c, h, w = z.shape
    if h < 3 or w < 3:
        raise ValueError(f"a 3x3 max-pool needs H, W >= 3, got a {tuple(z.shape)} tensor")
    shape = (n, c, (h - 3) // 2 + 1, (w - 3) // 2 + 1)
    return torch.empty(shape, dtype=z.dtype, device=z.device, memory_format=memory_format(z))


def _lrn_of_relu(z: Tensor, alpha: float, k: float, groups: int) -> tuple[Tensor, Tensor]:
    a = torch.relu(z)
    b = torch.empty_like(a)
    forward_into(a, b, SIZE, alpha, BETA, k, groups)
    return a, b


@torch.library.custom_op("alexnet::relu_lrn_pool", mutates_args=(), tags=ANY_LAYOUT)
def _relu_lrn_pool(z: Tensor, alpha: float, k: float, groups: int) -> Tensor:
    z = dense(z)
    out = pooled_like(z, groups)
    impl = implementation(z)
    if impl == "triton" and (tk := triton_kernels()) is not None:
        tk.relu_lrn_pool_forward(z, out, alpha, k, groups)
    elif impl == "c":
        dims = pool_dims(z, groups)
        fn = lrn_library().alexnet_relu_lrn_pool_forward
        call(fn, z, [z.data_ptr(), out.data_ptr()], dims, (SIZE, alpha, BETA, k), "ReLU-LRN-pool")
    else:
        out.copy_(F.max_pool2d(_lrn_of_relu(z, alpha, k, groups)[1], 3, 2))
    return out


@_relu_lrn_pool.register_fake
def _(z: Tensor, alpha: float, k: float, groups: int) -> Tensor:
    return pooled_like(z, groups)


@torch.library.custom_op("alexnet::relu_lrn_pool_backward", mutates_args=(), tags=ANY_LAYOUT)
def _relu_lrn_pool_backward(z: Tensor, grad: Tensor, alpha: float, k: float, groups: int) -> Tensor:
    """dL/dz given grad = dL/d relu_lrn_pool(z), in z's dtype and memory format."""
    z = dense(z)
    fmt = memory_format(z)
    out = torch.empty_like(z, memory_format=fmt)
    grad = grad.contiguous(memory_format=fmt)
    impl = implementation(z)
    if impl == "triton" and (tk := triton_kernels()) is not None:
        tk.relu_lrn_pool_backward(z, grad, out, alpha, k, groups)
        return out
    if impl == "c":
        ptrs = [z.data_ptr(), grad.data_ptr(), out.data_ptr()]
        fn = lrn_library().alexnet_relu_lrn_pool_backward
        call(fn, z, ptrs, pool_dims(z, groups), (SIZE, alpha, BETA, k), "ReLU-LRN-pool")
        return out
    a, b = _lrn_of_relu(z, alpha, k, groups)
    _, idx = torch.ops.aten.max_pool2d_with_indices(b, [3, 3], [2, 2])
    gb = torch.ops.aten.max_pool2d_with_indices_backward(
        grad, b, [3, 3], [2, 2], [0, 0], [1, 1], False, idx
    )
    ga = torch.ops.alexnet.lrn_backward(a, gb, SIZE, alpha, BETA, k, groups)
    return out.copy_(ga.masked_fill_(a <= 0, 0))  # ReLU's gradient: threshold_backward's rule


@_relu_lrn_pool_backward.register_fake
def _(z: Tensor, grad: Tensor, alpha: float, k: float, groups: int) -> Tensor:
    return torch.empty_like(z, memory_format=memory_format(z))


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    z, *params = inputs
    ctx.save_for_backward(z)
    ctx.params = params


def _backward(ctx, grad: Tensor):
    (z,) = ctx.saved_tensors
    return torch.ops.alexnet.relu_lrn_pool_backward(z, grad, *ctx.params), None, None, None


_relu_lrn_pool.register_autograd(_backward, setup_context=_setup_context)
