"""The C kernels as PyTorch custom operators (namespace ``alexnet``), registered on import:

    torch.ops.alexnet.lrn(x, size, alpha, beta, k, groups)         the paper's LRN (§3.3)
    torch.ops.alexnet.lrn_(x, size, alpha, beta, k, groups)        the same, in place
    torch.ops.alexnet.lrn_backward(x, grad, size, alpha, beta, k, groups)
    torch.ops.alexnet.relu_lrn_pool(z, alpha, k, groups)           ReLU -> LRN -> max-pool 3/2
    torch.ops.alexnet.relu_lrn_pool_backward(z, grad, alpha, k, groups)

Each has a fake implementation and its backward registered as autograd, so eager mode,
``torch.compile`` and ``torch.export`` call the same op on the CPU (modules ``lrn`` and
``fused``). ``select.implementation`` picks, per device and dtype, what runs: the C
kernels, chunked PyTorch ops (``chunked``), or on CUDA under ``torch.compile`` the plain
formula of ``formula``, which inductor fuses. ``alexnet.outputs.export.onnx_ops`` translates the
ops to ONNX.
"""

from . import fused as _fused  # noqa: F401  (registers relu_lrn_pool)
from . import lrn as _lrn  # noqa: F401  (registers lrn, lrn_, lrn_backward)
from .formula import lrn_formula, relu_lrn_pool_formula
from .select import implementation

__all__ = ["implementation", "lrn_formula", "relu_lrn_pool_formula"]
