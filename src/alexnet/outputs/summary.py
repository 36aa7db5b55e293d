"""Per-layer table of a model: output shape, parameters, multiply-accumulates.

Counts are taken by running one (1, 3, S, S) image through the model with
forward hooks on the leaf modules. MACs count only convolutions and linear
layers (out elements x in-channels-per-group x kernel area; in x out), as the
usual "FLOPs" tables do. Neurons are the output elements of those layers; the
paper (§1, Figure 2) quotes 650,000 and lists 253,440 + 186,624 + 64,896 +
64,896 + 43,264 + 4,096 + 4,096 + 1,000 = 622,312 (its conv1 figure matches no
input size: 55 x 55 x 96 = 290,400; the others match ours exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    neurons: int


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    params: int  # every parameter of the model, including ones no hook saw
    macs: int
    neurons: int
    input_size: int


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return out.numel() * (m.in_channels // m.groups) * kh * kw
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


@torch.no_grad()
def summarize(model: nn.Module, input_size: int = 227) -> ModelSummary:
    """Run one image through ``model`` (in eval mode) and tabulate its leaf layers. The
    image goes to the device of the model's parameters: a model built on the meta device
    (no memory, no initialisation: 0.02 s for the paper's network against 2.8 s) gives the
    same table, and ``alexnet summary`` and ``alexnet bench`` build theirs there."""
    rows: list[LayerRow] = []
    hooks = []

    def hook(name: str):
        def fn(m: nn.Module, _inp, out: torch.Tensor) -> None:
            neurons = out.numel() if isinstance(m, (nn.Conv2d, nn.Linear)) else 0
            params = sum(p.numel() for p in m.parameters(recurse=False))
            rows.append(
                LayerRow(
                    name, type(m).__name__, tuple(out.shape[1:]), params, _macs(m, out), neurons
                )
            )

        return fn

    for name, m in model.named_modules():
        if name and not list(m.children()):
            hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        model(torch.zeros(1, 3, input_size, input_size, device=None if p is None else p.device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return ModelSummary(
        rows=rows,
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(r.macs for r in rows),
        neurons=sum(r.neurons for r in rows),
        input_size=input_size,
    )


def format_summary(s: ModelSummary, title: str = "") -> str:
    """The table as text, one line per layer, then the totals."""
    head = f"{'layer':<22}{'type':<18}{'output shape':<20}{'params':>14}{'MACs':>16}"
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for r in s.rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"{r.name:<22}{r.kind:<18}{shape:<20}{r.params:>14,}{r.macs:>16,}")
    lines.append("-" * len(head))
    lines.append(f"input: 3x{s.input_size}x{s.input_size}")
    lines.append(f"parameters: {s.params:,}")
    lines.append(f"multiply-accumulates: {s.macs:,} ({s.macs / 1e9:.2f} GMACs)")
    lines.append(f"neurons (conv + fc outputs): {s.neurons:,}")
    return "\n".join(lines)
