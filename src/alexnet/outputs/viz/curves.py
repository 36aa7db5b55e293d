"""Training curves from ``metrics.jsonl`` records: loss and error against epoch."""

from __future__ import annotations

import math
import os

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._common import new_figure, save_figure

# (record key, legend label, colour); training curves dashed, validation solid
LOSS_KEYS = (("train_loss", "train", "C0"), ("val_loss", "validation", "C0"))
ERROR_KEYS = (
    ("train_top1_error", "train top-1", "C0"),
    ("val_top1_error", "validation top-1", "C0"),
    ("val_top5_error", "validation top-5", "C1"),
)


def _series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) for the records where ``key`` holds a finite number."""
    xs, ys = [], []
    for i, r in enumerate(records):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(float(r.get("epoch", i + 1)))
            ys.append(float(v))
    return xs, ys


def plot_curves(records: list[dict], out_path: str | os.PathLike | None = None) -> Figure:
    """Loss (left) and top-1/top-5 error in percent (right) against epoch.

    ``records`` are the per-epoch objects of ``metrics.jsonl`` (errors as
    fractions 0-1). Missing, None or non-finite values are left out, so a
    partial record or an empty list still draws (training calls this as its epochs
    end, ``viz.callbacks.CurvesPlot``, and must never fail on it).
    """
    fig = new_figure(10, 4)
    ax_loss, ax_err = fig.subplots(1, 2)
    drawn = 0
    for ax, keys, scale in ((ax_loss, LOSS_KEYS, 1.0), (ax_err, ERROR_KEYS, 100.0)):
        for key, label, colour in keys:
            xs, ys = _series(records, key)
            if xs:
                style = "--" if key.startswith("train") else "-"
                ys = [scale * y for y in ys]
                ax.plot(xs, ys, style, color=colour, marker="o", markersize=3, label=label)
                drawn += 1
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss")
    ax_err.set(title="Error rate", xlabel="epoch", ylabel="error (%)")
    for ax in (ax_loss, ax_err):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if not drawn:
        fig.suptitle("no epoch metrics recorded yet")
    save_figure(fig, out_path)
    return fig
