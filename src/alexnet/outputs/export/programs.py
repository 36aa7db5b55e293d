"""ONNX and ``torch.export`` programs, with a dynamic batch axis.

Both trace the model at batch 2 with ``torch.export``: the paper model's custom ops
(``torch.ops.alexnet.*``) stay in the program, and ``onnx_ops`` translates them to
ONNX's LRN, Relu and MaxPool. The ONNX file is then run with onnxruntime on batches
of 1, 3 and 5 and compared with PyTorch; ``alexnet export CKPT --format onnx`` prints
the differences (docs/export.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from alexnet.engine.checkpoint import LoadedModel
from alexnet.errors import UserError

from ._common import as_loaded, describe, input_size_of
from .onnx_ops import translations

DEFAULT_OPSET = 20  # what torch 2.14's exporter targets by default
# fp32 max abs difference allowed between onnxruntime and PyTorch, for logits up to 1 in size;
# larger logits scale it (fp32 rounding is relative): max(1, max |logit|) * 1e-4.
ONNX_TOLERANCE = 1e-4
CHECK_BATCH_SIZES = (1, 3, 5)
EXPORT_BATCH = 2


@dataclass
class OnnxReport:
    """What ``export_onnx`` wrote and how closely onnxruntime matches PyTorch."""

    path: Path
    opset: int
    size_bytes: int
    max_abs_diff: dict[int, float] = field(default_factory=dict)  # batch size -> max |ort - pt|
    max_abs_logit: float = 0.0  # the largest PyTorch logit in the check, for scale

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)


def _prepare(model) -> tuple[LoadedModel, nn.Module, torch.Tensor]:
    """The fp32 CPU model in eval mode and an example batch (EXPORT_BATCH, 3, S, S)."""
    loaded = as_loaded(model)
    net = loaded.model.to("cpu", torch.float32).eval()
    size = input_size_of(loaded)
    return loaded, net, torch.randn(EXPORT_BATCH, 3, size, size)


def _batch_axis() -> tuple[dict[int, torch.export.Dim]]:
    return ({0: torch.export.Dim("batch", min=1)},)


def export_onnx(
    model: LoadedModel | nn.Module,
    out: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    batch_sizes: tuple[int, ...] = CHECK_BATCH_SIZES,
) -> OnnxReport:
    """Write one ONNX file: input ``images`` (batch, 3, S, S) -> ``logits`` (batch, classes).

    With ``check`` the file runs in onnxruntime on random batches of
    ``batch_sizes`` (not the export batch) and is compared with PyTorch; a max
    abs difference above ``ONNX_TOLERANCE`` (times the largest logit, where that
    exceeds 1) raises UserError. Model name, class names and preprocessing go into
    the model's ``metadata_props`` as JSON.
    """
    loaded, net, x = _prepare(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        program = torch.onnx.export(
            net,
            (x,),
            None,
            dynamo=True,
            verbose=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=_batch_axis(),
            custom_translation_table=translations(),
        )
    except ImportError as e:  # onnx / onnxscript come with the `export` extra
        raise UserError(f"ONNX export needs {e.name}: pip install 'alexnet[export]'") from None
    meta = describe(loaded)
    program.model.metadata_props.update(
        {f"alexnet.{k}": json.dumps(v) for k, v in meta.items() if k != "weights"}
    )
    program.save(out, external_data=False)  # one file: ~230 MB, far below protobuf's 2 GB
    report = OnnxReport(out, opset, out.stat().st_size)
    if check:
        report.max_abs_diff, report.max_abs_logit = check_onnx(out, net, batch_sizes)
        tolerance = ONNX_TOLERANCE * max(1.0, report.max_abs_logit)
        if report.worst > tolerance:
            raise UserError(
                f"{out}: onnxruntime differs from PyTorch by {report.worst:.3g} (> "
                f"{tolerance:.3g} for logits up to {report.max_abs_logit:.3g}); the file was "
                "written but should not be trusted"
            )
    return report


def check_onnx(
    path: str | os.PathLike, net: nn.Module, batch_sizes=CHECK_BATCH_SIZES
) -> tuple[dict[int, float], float]:
    """Max abs difference between onnxruntime's and PyTorch's logits per batch size, and the
    largest PyTorch logit (its scale)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("checking ONNX needs onnxruntime: pip install 'alexnet[export]'") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape  # ['batch', 3, S, S]
    gen = torch.Generator().manual_seed(0)
    diffs, scale = {}, 0.0
    for b in batch_sizes:
        x = torch.randn(b, 3, int(shape[2]), int(shape[3]), generator=gen)
        with torch.no_grad():
            ref = net(x).numpy()
        got = session.run(["logits"], {"images": x.numpy()})[0]
        if got.shape != ref.shape:
            raise UserError(f"{path}: onnxruntime gave shape {got.shape}, PyTorch {ref.shape}")
        diffs[b] = float(abs(got - ref).max())
        scale = max(scale, float(abs(ref).max()))
    return diffs, scale


def export_pt2(model: LoadedModel | nn.Module, out: str | os.PathLike) -> Path:
    """Save a ``torch.export`` program with a dynamic batch axis, for deployment elsewhere.

    The sidecar description travels inside as the extra file ``alexnet.json``. The
    paper model's program calls ``torch.ops.alexnet.lrn`` / ``relu_lrn_pool``: where it
    is loaded, ``import alexnet.ops`` first registers them.
    A ``.pt2`` can run code when loaded: load only files you made yourself. This
    project never loads one.
    """
    loaded, net, x = _prepare(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program = torch.export.export(net, (x,), dynamic_shapes=_batch_axis())
    torch.export.save(program, out, extra_files={"alexnet.json": json.dumps(describe(loaded))})
    return out
