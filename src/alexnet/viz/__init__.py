"""Figures: training curves, the paper's Figure 3 (conv1 kernels) and Figure 4
(top-5 predictions, FC7 nearest neighbours), confusion matrices.

Every plot builds a ``matplotlib.figure.Figure`` directly (no pyplot, no GUI
backend), so it works headless; each returns the Figure and writes a PNG when
given ``out_path``.
"""

from ._common import figure_png_bytes, save_figure
from .curves import plot_curves

__all__ = [
    "figure_png_bytes",
    "plot_curves",
    "save_figure",
]
