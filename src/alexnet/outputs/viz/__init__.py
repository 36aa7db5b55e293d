"""Figures: training curves, the paper's Figure 3 (conv1 kernels) and Figure 4
(top-5 predictions, FC7 nearest neighbours), confusion matrices.

Every plot builds a ``matplotlib.figure.Figure`` directly (no pyplot, no GUI
backend), so it works headless; each returns the Figure and writes a PNG when
given ``out_path``.
"""

from ._common import figure_png_bytes, save_figure
from .confusion import confusion_matrix, plot_confusion
from .curves import plot_curves
from .examples import TopK, plot_neighbors, plot_predictions, top_k_rows
from .kernels import (
    colour_specificity,
    conv1_towers,
    conv1_weight,
    mosaic,
    normalise_for_display,
    plot_filters,
)

__all__ = [
    "TopK",
    "confusion_matrix",
    "plot_confusion",
    "plot_neighbors",
    "plot_predictions",
    "top_k_rows",
    "colour_specificity",
    "conv1_towers",
    "conv1_weight",
    "figure_png_bytes",
    "mosaic",
    "normalise_for_display",
    "plot_curves",
    "plot_filters",
    "save_figure",
]
