"""Figure 3: the first layer's kernels, tower by tower, and how colourful each tower is.

The paper (§6.1, Figure 3) shows conv1's 96 kernels of size 11x11x3 and notes
"the kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2
are largely color-specific". ``colour_specificity`` turns that into a number
per kernel so the claim can be checked on any checkpoint:

    chroma fraction = |w - lum(w)|^2 / |w - mean(w)|^2

where ``lum(w)`` repeats each pixel's mean over R, G, B in all three
channels. It is the share of a kernel's variance carried by colour
differences rather than brightness: 0 for a grey-level kernel, 1 for one
whose channels cancel at every pixel, about 2/3 for random initial weights
(two of three degrees of freedom per pixel are colour).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ._common import new_figure, save_figure

RANDOM_CHROMA = 2 / 3  # expected chroma fraction of i.i.d. random kernels


@dataclass
class TowerKernels:
    """conv1 kernels of one tower (the paper's GPU), (n, 3, kh, kw), and their label."""

    label: str
    first: int  # index of the first kernel in conv1
    weights: Tensor

    @property
    def chroma(self) -> Tensor:
        return colour_specificity(self.weights)


def conv1_weight(model: nn.Module) -> Tensor:
    """The first convolution's weight (out, 3, kh, kw), on the CPU as float32."""
    m = getattr(model, "model", model)  # LoadedModel -> its model
    features = getattr(m, "features", None)
    conv = getattr(features, "conv1", None)  # the paper's network names it
    if conv is None:
        conv = next((c for c in m.modules() if isinstance(c, nn.Conv2d)), None)
    if conv is None or conv.weight.shape[1] != 3:
        raise ValueError("the model has no first convolution over RGB images")
    return conv.weight.detach().float().cpu()


def conv1_towers(model: nn.Module) -> list[TowerKernels]:
    """conv1's kernels split as the model's towers: A and B for the paper's net, one for owt."""
    from alexnet.models import AlexNet, tower_slices

    w = conv1_weight(model)
    m = getattr(model, "model", model)
    if not isinstance(m, AlexNet):
        return [TowerKernels(f"single tower: kernels 0-{len(w) - 1}", 0, w)]
    towers = []
    for name, gpu, s in zip("AB", (1, 2), tower_slices(m)["conv1"], strict=True):
        label = f"tower {name} (GPU {gpu}): kernels {s.start}-{s.stop - 1}"
        towers.append(TowerKernels(label, s.start, w[s]))
    return towers


def colour_specificity(kernels: Tensor) -> Tensor:
    """Chroma fraction in [0, 1] of each (3, kh, kw) kernel (module docstring); (n,) out."""
    w = kernels.double().flatten(2)  # (n, 3, P)
    lum = w.mean(dim=1, keepdim=True)  # (n, 1, P) per-pixel brightness
    colour = ((w - lum) ** 2).sum(dim=(1, 2))
    total = ((w - w.mean(dim=(1, 2), keepdim=True)) ** 2).sum(dim=(1, 2))
    return torch.where(total > 0, colour / total.clamp_min(1e-300), 0.0).float()


def normalise_for_display(kernels: Tensor) -> np.ndarray:
    """(n, 3, kh, kw) -> (n, kh, kw, 3) in [0, 1]: each kernel min-max scaled on its own
    (one scale for its three channels, so a grey-level kernel stays grey)."""
    w = kernels.double()
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    span = w.amax(dim=(1, 2, 3), keepdim=True) - lo
    out = torch.where(span > 0, (w - lo) / span.clamp_min(1e-300), 0.5)
    return out.permute(0, 2, 3, 1).float().numpy()


def mosaic(tiles: np.ndarray, cols: int, gap: int = 1) -> np.ndarray:
    """(n, h, w, 3) tiles -> one (rows*(h+gap)-gap, cols*(w+gap)-gap, 3) image, white gaps."""
    n, h, w, _ = tiles.shape
    rows = -(-n // cols)
    out = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return out


def plot_filters(
    model: nn.Module, out_path: str | os.PathLike | None = None, *, cols: int = 16
) -> Figure:
    """conv1's kernels as an 11x11 colour grid, one labelled block per tower (Figure 3).

    Each block's title carries the tower's mean chroma fraction. The paper's
    network gives two blocks of 48 (3 rows of 16, as in the paper's figure);
    ``alexnet_owt`` one block of 64.
    """
    towers = conv1_towers(model)
    blocks = [mosaic(normalise_for_display(t.weights), cols) for t in towers]
    heights = [b.shape[0] for b in blocks]
    width_in = 10.0
    height_in = sum(width_in * h / blocks[0].shape[1] + 0.5 for h in heights) + 0.4
    fig = new_figure(width_in, height_in)
    axes = fig.subplots(len(blocks), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, tower, block in zip(axes, towers, blocks, strict=True):
        ax.imshow(block, interpolation="nearest")
        ax.set_title(f"{tower.label} - mean chroma {float(tower.chroma.mean()):.2f}", fontsize=10)
        ax.set_axis_off()
    fig.suptitle(
        f"conv1: {sum(len(t.weights) for t in towers)} kernels of "
        f"{'x'.join(map(str, towers[0].weights.shape[1:]))}, each scaled to its own range",
        fontsize=11,
    )
    save_figure(fig, out_path)
    return fig
