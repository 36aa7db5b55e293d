"""Figure plumbing shared by the plots: pyplot-free figures, PNG output, image display."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A figure that never touches pyplot or a GUI backend (headless-safe)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig: Figure, out_path: str | os.PathLike | None) -> Path | None:
    """Write ``fig`` as PNG to ``out_path`` (parents created); None writes nothing."""
    if out_path is None:
        return None
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def figure_png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for embedding in the run report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def to_display(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (3, H, W) or (H, W, 3) image -> (H, W, 3) float array clipped to [0, 1]."""
    a = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else image
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.clip(a, 0.0, 1.0)
