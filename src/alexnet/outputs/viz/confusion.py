"""Confusion matrix of a classifier on labelled images (rows: true class, columns: predicted)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor

from ._common import new_figure, save_figure

MAX_LABELLED = 30  # above this many classes the axes carry indices, not names


def confusion_matrix(predicted: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 counts; entry [t, p] = images of class t predicted as p."""
    idx = targets.long() * num_classes + predicted.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def plot_confusion(
    matrix: Tensor, classes: Sequence[str], out_path: str | os.PathLike | None = None
) -> Figure:
    """The matrix with each row divided by its count (0-1), so classes with few images
    weigh the same; class names on the axes up to 30 classes."""
    m = matrix.double()
    rows = m.sum(dim=1, keepdim=True)
    norm = torch.where(rows > 0, m / rows.clamp_min(1), 0.0).numpy()
    n = len(classes)
    side = min(12.0, max(4.5, 0.28 * n + 2.5))
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    if n <= MAX_LABELLED:
        ax.set_xticks(range(n), [c[:16] for c in classes], rotation=90, fontsize=7)
        ax.set_yticks(range(n), [c[:16] for c in classes], fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class")
    total = int(m.sum())
    acc = float(m.diagonal().sum() / total) if total else float("nan")
    ax.set_title(f"Confusion matrix ({total} images, top-1 accuracy {acc:.1%})", fontsize=10)
    save_figure(fig, out_path)
    return fig
