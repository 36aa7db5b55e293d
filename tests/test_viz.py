"""Figures: files written, image sizes, tile counts, values in range, highlight data."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from alexnet.viz import plot_curves


def _records(n: int = 5) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 3.0 - 0.3 * e,
            "train_top1_error": 0.9 - 0.05 * e,
            "val_loss": 3.1 - 0.25 * e,
            "val_top1_error": 0.92 - 0.04 * e,
            "val_top5_error": 0.7 - 0.05 * e,
            "lr": 0.01,
            "images_per_second": 100.0,
            "seconds": 1.0,
        }
        for e in range(1, n + 1)
    ]


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_plot_curves_writes_png_with_both_panels(tmp_path):
    out = tmp_path / "plots" / "curves.png"
    fig = plot_curves(_records(), out)
    assert out.exists() and _png_size(out) == (1000, 400)
    ax_loss, ax_err = fig.axes
    assert len(ax_loss.lines) == 2 and len(ax_err.lines) == 3
    # errors are drawn in percent, epochs on x
    val_top1 = [ln for ln in ax_err.lines if ln.get_label() == "validation top-1"][0]
    assert list(val_top1.get_xdata()) == [1, 2, 3, 4, 5]
    assert all(0 <= y <= 100 for y in val_top1.get_ydata())
    assert val_top1.get_ydata()[0] == pytest.approx(88.0)


@pytest.mark.parametrize(
    "records",
    [[], [{"epoch": 1, "train_loss": None, "val_loss": math.nan}], [{"train_loss": 2.0}]],
    ids=["empty", "none-and-nan", "no-epoch-key"],
)
def test_plot_curves_tolerates_partial_records(tmp_path, records):
    out = tmp_path / "curves.png"
    plot_curves(records, out)
    assert _png_size(out) == (1000, 400)
