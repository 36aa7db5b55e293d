"""Figures: files written, image sizes, tile counts, values in range, highlight data."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from PIL import Image

import alexnet
from alexnet.outputs.viz import (
    colour_specificity,
    confusion_matrix,
    conv1_towers,
    conv1_weight,
    normalise_for_display,
    plot_confusion,
    plot_curves,
    plot_filters,
    plot_neighbors,
    plot_predictions,
    top_k_rows,
)
from alexnet.outputs.viz.examples import HIT_COLOUR
from alexnet.outputs.viz.kernels import RANDOM_CHROMA
from alexnet.outputs.viz.samples import DisplayTransform, pick_indices


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


def test_curves_are_redrawn_when_drawing_costs_at_most_a_twentieth_of_the_time(monkeypatch):
    """CurvesPlot: an epoch ending less than 20 drawing-times (0.5 s taken before the first)
    after the start or the last drawing is not drawn, a later one is; the end of the run
    draws what was skipped (and nothing when every epoch was drawn); only rank 0 draws."""
    import types

    from alexnet.outputs.viz import callbacks

    clock, drawn = [100.0], []

    def draw(records, path):  # a drawing that takes 0.4 s
        drawn.append((len(records), path.name))
        clock[0] += 0.4

    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(callbacks, "plot_curves", draw)
    main = types.SimpleNamespace(records=[], cfg=types.SimpleNamespace(out="run"))
    main.dist = types.SimpleNamespace(is_main=True)
    plot = callbacks.CurvesPlot()
    plot.on_train_start(main)

    def epoch(seconds: float) -> None:
        clock[0] += seconds
        main.records.append({})
        plot.on_epoch_end(main, {})

    epoch(1.0)
    epoch(8.9)  # 9.9 s since the start: under 20 x 0.5
    assert drawn == []
    epoch(0.2)  # 10.1 s
    assert drawn == [(3, "curves.png")]
    epoch(7.0)
    epoch(0.9)  # 7.9 s since the drawing of 0.4 s ended: under 20 x 0.4
    assert len(drawn) == 1
    epoch(0.2)  # 8.1 s
    assert drawn[-1] == (6, "curves.png")
    epoch(1.0)
    plot.on_train_end(main, {})
    assert drawn[-1] == (7, "curves.png") and len(drawn) == 3
    plot.on_train_end(main, {})  # nothing new since
    assert len(drawn) == 3
    other = types.SimpleNamespace(records=[{}], cfg=main.cfg)
    other.dist = types.SimpleNamespace(is_main=False)
    rank1 = callbacks.CurvesPlot()
    rank1.on_train_start(other)
    rank1.on_epoch_end(other, {})
    rank1.on_train_end(other, {})
    assert len(drawn) == 3


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


# ---- Figure 3: conv1 kernels ----


@pytest.mark.parametrize(
    ("name", "towers", "per_tower", "rows"),
    [("alexnet", 2, 48, 3), ("alexnet_owt", 1, 64, 4)],
)
def test_plot_filters_tiles_every_kernel_per_tower(tmp_path, name, towers, per_tower, rows):
    model = alexnet.create_model(name, num_classes=4)
    blocks = conv1_towers(model)
    assert [len(b.weights) for b in blocks] == [per_tower] * towers
    assert [b.first for b in blocks] == [i * per_tower for i in range(towers)]
    torch.testing.assert_close(torch.cat([b.weights for b in blocks]), conv1_weight(model))
    out = tmp_path / "filters.png"
    fig = plot_filters(model, out, cols=16)
    assert len(fig.axes) == towers  # one labelled block per tower
    for ax, block in zip(fig.axes, blocks, strict=True):
        (image,) = ax.get_images()
        arr = image.get_array()
        assert arr.shape == (rows * 12 - 1, 16 * 12 - 1, 3)  # 11x11 tiles, 1 px gaps
        assert arr.min() >= 0.0 and arr.max() <= 1.0
        assert block.label.split(":")[0] in ax.get_title()
    w, h = _png_size(out)
    assert w == 1000 and h > 200


def test_paper_towers_are_labelled_a_and_b():
    blocks = conv1_towers(alexnet.create_model("alexnet", num_classes=4))
    assert blocks[0].label.startswith("tower A (GPU 1): kernels 0-47")
    assert blocks[1].label.startswith("tower B (GPU 2): kernels 48-95")


def test_kernels_are_normalised_each_to_its_own_range():
    w = torch.randn(5, 3, 11, 11) * torch.tensor([1e-3, 1.0, 10.0, 1.0, 1.0]).view(5, 1, 1, 1)
    w[3] = 0.7  # constant kernel: mid-grey, no division by zero
    tiles = normalise_for_display(w)
    assert tiles.shape == (5, 11, 11, 3)
    for i in (0, 1, 2, 4):
        assert tiles[i].min() == pytest.approx(0.0) and tiles[i].max() == pytest.approx(1.0)
    assert np.allclose(tiles[3], 0.5)
    grey = torch.randn(1, 1, 11, 11).expand(1, 3, 11, 11)
    t = normalise_for_display(grey)[0]
    assert np.allclose(t[..., 0], t[..., 1]) and np.allclose(t[..., 1], t[..., 2])


def test_colour_specificity_scale():
    g = torch.randn(4, 1, 11, 11)
    grey = g.expand(4, 3, 11, 11)
    opponent = torch.cat([g, -g, torch.zeros_like(g)], dim=1)  # R-G: channels cancel
    assert torch.allclose(colour_specificity(grey), torch.zeros(4), atol=1e-6)
    assert torch.allclose(colour_specificity(opponent), torch.ones(4), atol=1e-6)
    mixed = grey + 0.3 * opponent
    s = colour_specificity(mixed)
    assert ((s > 0) & (s < 1)).all()
    torch.testing.assert_close(colour_specificity(1e4 * mixed), s)  # scale-free
    torch.testing.assert_close(colour_specificity(mixed + 5.0), s)  # offset-free
    rand = colour_specificity(torch.randn(2000, 3, 11, 11))
    assert float(rand.mean()) == pytest.approx(RANDOM_CHROMA, abs=0.01)
    assert colour_specificity(torch.ones(1, 3, 11, 11)).tolist() == [0.0]


def test_colour_specificity_tells_towers_apart():
    model = alexnet.create_model("alexnet", num_classes=4)
    with torch.no_grad():
        w = model.features.conv1.weight
        w[:48] = w[:48, :1].expand(-1, 3, -1, -1)  # tower A grey-level
    a, b = (t.chroma.mean() for t in conv1_towers(model))
    assert float(a) < 1e-6 and float(b) == pytest.approx(RANDOM_CHROMA, abs=0.05)


# ---- Figure 4: predictions and neighbours ----


def test_top_k_rows_highlight_the_correct_label():
    classes = [f"c{i}" for i in range(8)]
    probs = torch.tensor([[0.06, 0.4, 0.3, 0.1, 0.05, 0.03, 0.03, 0.03]] * 3)
    rows = top_k_rows(probs, [2, 1, 7], classes, k=5)
    assert rows[0].labels == ["c1", "c2", "c3", "c0", "c4"]
    assert rows[0].probs == sorted(rows[0].probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for r in rows for p in r.probs)
    assert (rows[0].hit, rows[1].hit, rows[2].hit) == (1, 0, None)  # c7 is not in the top 5
    assert rows[2].target == "c7" and rows[2].target_prob == pytest.approx(0.03)
    assert len(top_k_rows(probs[:, :3], [0, 0, 0], classes[:3], k=5)[0].labels) == 3
    assert top_k_rows(probs, None, classes)[0].hit is None


def test_plot_predictions_draws_red_bar_for_the_hit(tmp_path):
    classes = [f"class {i}" for i in range(6)]
    probs = torch.softmax(torch.arange(6.0).repeat(3, 1), dim=1)  # class 5 most probable
    rows = top_k_rows(probs, [5, 3, 0], classes)
    out = tmp_path / "preds.png"
    fig = plot_predictions(torch.rand(3, 3, 227, 227), rows, out, cols=2)
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(image_axes) == 3 and len(bar_axes) == 3
    red = [
        [i for i, p in enumerate(ax.patches) if to_hex(p.get_facecolor()) == HIT_COLOUR]
        for ax in bar_axes
    ]
    assert red == [[0], [2], []]  # top-1 hit, rank-3 hit, label outside the top 5
    assert all(0 <= p.get_width() <= 1 for ax in bar_axes for p in ax.patches)
    w, h = _png_size(out)
    assert (w, h) == (600, 880)


def test_plot_neighbors_grid(tmp_path):
    q = torch.rand(2, 3, 64, 64)
    neigh = [list(torch.rand(4, 3, 64, 64)), list(torch.rand(4, 3, 64, 64))]
    dist = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.5, 0.6, 0.7, 0.8]])
    out = tmp_path / "nn.png"
    fig = plot_neighbors(q, neigh, dist, out, query_labels=["a", "b"])
    assert len(fig.axes) == 2 * 5 and all(ax.get_images() for ax in fig.axes)
    assert "d=0" in fig.axes[1].get_title()
    assert _png_size(out)[0] == 800


def test_confusion_matrix_counts_and_plot(tmp_path):
    m = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    fig = plot_confusion(m, ["a", "b", "c"], tmp_path / "cm.png")
    arr = fig.axes[0].get_images()[0].get_array()
    assert arr.shape == (3, 3) and arr.min() >= 0 and arr.max() <= 1
    assert np.allclose(arr.sum(1), 1.0)
    assert "75.0%" in fig.axes[0].get_title()
    assert (tmp_path / "cm.png").exists()


def test_pick_indices_and_display_transform():
    from PIL import Image as PILImage

    assert pick_indices(10, 5) == [0, 2, 4, 6, 8]
    assert pick_indices(3, 5) == [0, 1, 2] and pick_indices(4, 0) == [0, 1, 2, 3]
    drawn = pick_indices(100, 5, seed=1)
    assert drawn == pick_indices(100, 5, seed=1) and len(set(drawn)) == 5
    img = PILImage.new("RGB", (300, 200), (255, 0, 0))
    x = DisplayTransform(227)(img)
    assert x.shape == (3, 227, 227) and x.min() >= 0 and x.max() <= 1
    assert torch.allclose(x[0], torch.ones(227, 227), atol=0.01)


def test_figures_need_no_display_or_pyplot(tmp_path):
    """An interactive MPLBACKEND and no DISPLAY: the plots still write PNGs, never via pyplot."""
    code = (
        "import sys, torch, alexnet\n"
        "from alexnet.outputs.viz import plot_curves, plot_filters\n"
        f"plot_curves([], {str(tmp_path / 'c.png')!r})\n"
        f"plot_filters(alexnet.create_model('alexnet_owt', num_classes=2), "
        f"{str(tmp_path / 'f.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert (tmp_path / "c.png").exists() and (tmp_path / "f.png").exists()
