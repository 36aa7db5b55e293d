"""Figure 4: what the network sees.

Left half of the paper's figure: test images with the five labels the model
considers most probable; "the correct label is written under each image, and
the probability assigned to the correct label is also shown with a red bar (if
it happens to be in the top 5)". Right half: test images (first column) and
the training images whose last hidden layer (fc7) vectors are closest in
Euclidean distance (§6.1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure
from torch import Tensor

from ._common import new_figure, save_figure, to_display

HIT_COLOUR = "#d62728"  # the paper's red bar: the correct label within the top 5
OTHER_COLOUR = "#8c9fb8"


@dataclass
class TopK:
    """The k most probable labels for one image and where the correct one landed."""

    labels: list[str]
    probs: list[float]  # descending, each in [0, 1]
    target: str | None  # correct label, None when unknown
    target_prob: float | None
    hit: int | None  # position of the correct label among the k, else None


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def top_k_rows(
    probs: Tensor, targets: Sequence[int] | Tensor | None, classes: Sequence[str], k: int = 5
) -> list[TopK]:
    """Top-k labels and probabilities per row of ``probs`` (N, C); k is capped at C."""
    k = min(k, probs.shape[1])
    top_p, top_i = probs.float().topk(k, dim=1)
    rows = []
    for n in range(probs.shape[0]):
        idx = top_i[n].tolist()
        t = None if targets is None else int(targets[n])
        hit = idx.index(t) if t is not None and t in idx else None
        rows.append(
            TopK(
                labels=[classes[i] for i in idx],
                probs=top_p[n].tolist(),
                target=None if t is None else classes[t],
                target_prob=None if t is None else float(probs[n, t]),
                hit=hit,
            )
        )
    return rows


def plot_predictions(
    images: Sequence[Tensor] | Tensor,
    rows: Sequence[TopK],
    out_path: str | os.PathLike | None = None,
    *,
    cols: int = 4,
) -> Figure:
    """Each image above a bar chart of its top-k probabilities (Figure 4, left).

    ``images`` are (3, H, W) tensors in [0, 1] (display versions, not the
    normalised model inputs); ``rows`` come from ``top_k_rows``.
    """
    if len(images) != len(rows) or not rows:
        raise ValueError(f"need one TopK row per image, got {len(images)} and {len(rows)}")
    cols = min(cols, len(rows))
    nrows = -(-len(rows) // cols)
    fig = new_figure(3.0 * cols, 4.4 * nrows)
    grid = fig.add_gridspec(2 * nrows, cols, height_ratios=[3, 2] * nrows)
    for n, (image, row) in enumerate(zip(images, rows, strict=True)):
        r, c = divmod(n, cols)
        ax_img = fig.add_subplot(grid[2 * r, c])
        ax_img.imshow(to_display(image))
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        title = "label unknown" if row.target is None else _short(row.target, 22)
        ax_img.set_xlabel(title, fontsize=9, fontweight="bold")
        ax_bar = fig.add_subplot(grid[2 * r + 1, c])
        ypos = list(range(len(row.labels)))[::-1]  # most probable at the top
        colours = [HIT_COLOUR if i == row.hit else OTHER_COLOUR for i in range(len(row.labels))]
        ax_bar.barh(ypos, row.probs, color=colours, height=0.7)
        ax_bar.set_yticks(ypos, [_short(s, 18) for s in row.labels], fontsize=7)
        ax_bar.set_xlim(0, 1)
        ax_bar.tick_params(axis="x", labelsize=7)
        if row.hit is not None:
            ax_bar.get_yticklabels()[row.hit].set_color(HIT_COLOUR)
    fig.suptitle("Top-5 predictions (correct label in red when it is among them)", fontsize=11)
    save_figure(fig, out_path)
    return fig


def plot_neighbors(
    queries: Sequence[Tensor] | Tensor,
    neighbors: Sequence[Sequence[Tensor]],
    distances: Tensor,
    out_path: str | os.PathLike | None = None,
    *,
    query_labels: Sequence[str] | None = None,
    neighbor_labels: Sequence[Sequence[str]] | None = None,
) -> Figure:
    """One row per query: the query image, then its nearest training images (Figure 4, right).

    ``neighbors[q]`` are the display images of query q's neighbours, nearest
    first, and ``distances[q]`` their fc7 Euclidean distances.
    """
    nq = len(queries)
    k = max((len(n) for n in neighbors), default=0)
    if nq == 0 or len(neighbors) != nq or k == 0:
        raise ValueError("need at least one query, each with at least one neighbour")
    fig = new_figure(1.6 * (k + 1), 1.9 * nq)
    axes = fig.subplots(nq, k + 1, squeeze=False)
    for q in range(nq):
        ax = axes[q, 0]
        ax.imshow(to_display(queries[q]))
        label = f"query: {_short(query_labels[q], 14)}" if query_labels else "query"
        ax.set_title(label, fontsize=8, fontweight="bold")
        for j in range(k):
            ax = axes[q, j + 1]
            if j < len(neighbors[q]):
                ax.imshow(to_display(neighbors[q][j]))
                label = _short(neighbor_labels[q][j], 12) + "\n" if neighbor_labels else ""
                ax.set_title(f"{label}d={float(distances[q, j]):.3g}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[:, 0]:
        for side in ax.spines.values():
            side.set_color(HIT_COLOUR)
            side.set_linewidth(2)
    fig.suptitle("Training images nearest in fc7 (Euclidean) to each query", fontsize=10)
    save_figure(fig, out_path)
    return fig
