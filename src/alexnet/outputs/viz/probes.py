"""Checkpoint + dataset -> figure: the work behind ``alexnet visualize`` and the run report.

Each function takes an ``InferenceSetup`` (``alexnet.tasks.inference.load_for_inference``:
model on its device, precision, the checkpoint's preprocessing) and a data
source as ``build_dataset`` reads it, runs the model batched through
``alexnet.tasks.features`` and draws with the plots of this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import Dataset

from .confusion import confusion_matrix, plot_confusion
from .examples import TopK, plot_neighbors, plot_predictions, top_k_rows
from .samples import DisplayTransform, TransformedSubset, open_split, pick_indices, targets_of


def _open_checked(setup, source: str | os.PathLike, split: str) -> Dataset:
    """The raw ``split`` with ``.targets`` as the checkpoint's outputs (the data may hold
    any subset of its classes: ``alexnet.data.classes.map_classes``)."""
    from alexnet.data.classes import map_classes

    ds = open_split(source, split)
    classes = list(getattr(ds, "classes", []))
    if classes:
        cmap = map_classes(setup.classes, classes, f"{source} [{split}]")
        if not cmap.identity:
            ds = _Relabelled(ds, cmap.indices)
    return ds


class _Relabelled(Dataset):
    """``base`` with each target ``t`` given as ``indices[t]``."""

    def __init__(self, base: Dataset, indices: list[int]) -> None:
        self.base, self.indices = base, indices
        self.targets = [indices[t] for t in base.targets]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        img, target = self.base[i]
        return img, self.indices[target]


def _names(setup, ds: Dataset) -> list[str]:
    """Labels to print: the checkpoint's (ImageNet ids made readable), or the data's
    when the checkpoint carries only numbers."""
    from alexnet.data.classes import display_names

    own = list(setup.classes)
    if own == [str(i) for i in range(len(own))] and len(getattr(ds, "classes", [])) == len(own):
        return list(ds.classes)
    return display_names(own)


def _transforms(setup):
    from alexnet.tasks.inference import eval_transform_for, preprocessing_of

    pre = preprocessing_of(setup.models[0])
    display = DisplayTransform(
        int(pre["input_size"]), int(pre.get("resize") or 256), pre.get("resize_mode") or "square"
    )
    return eval_transform_for(setup), display


def _probs(setup, ds: Dataset, indices: list[int], batch_size: int, workers: int) -> Tensor:
    from alexnet.tasks.features import class_probabilities

    model_tf, _ = _transforms(setup)
    subset = TransformedSubset(ds, indices, model_tf)
    return class_probabilities(
        setup.models[0],
        subset,
        batch_size=batch_size,
        device=setup.device,
        amp=setup.amp,
        num_workers=workers,
    )


def sample_predictions(
    setup,
    source: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    count: int = 8,
    seed: int | None = None,
    k: int = 5,
    split: str = "val",
    batch_size: int = 64,
    num_workers: int = 0,
) -> tuple[Figure, list[TopK]]:
    """``count`` validation images with their top-``k`` bars (Figure 4, left)."""
    ds = _open_checked(setup, source, split)
    indices = pick_indices(len(ds), count, seed)
    probs = _probs(setup, ds, indices, batch_size, num_workers)
    rows = top_k_rows(probs, targets_of(ds, indices), _names(setup, ds), k)
    images = TransformedSubset(ds, indices, _transforms(setup)[1]).images()
    return plot_predictions(images, rows, out_path), rows


@dataclass
class NeighborResult:
    query_indices: list[int]  # into the query split
    train_indices: Tensor  # (Q, k) into the training split, nearest first
    distances: Tensor  # (Q, k) fc7 Euclidean distances, ascending
    searched: int  # training images whose features were compared
    train_total: int


def nearest_training_images(
    setup,
    source: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    queries: int = 5,
    k: int = 6,
    max_train: int = 5000,
    seed: int | None = None,
    query_split: str = "val",
    batch_size: int = 64,
    num_workers: int = 0,
) -> tuple[Figure, NeighborResult]:
    """Validation images and the ``k`` training images closest in fc7 (Figure 4, right).

    The paper searched the whole training set; ``max_train`` (0: all) caps the
    evenly spaced subset searched here, since every image costs a forward pass.
    """
    from alexnet.tasks.features import features, nearest_neighbors

    query_ds = _open_checked(setup, source, query_split)
    train_ds = _open_checked(setup, source, "train")
    model_tf, display_tf = _transforms(setup)
    q_idx = pick_indices(len(query_ds), queries, seed)
    t_idx = pick_indices(len(train_ds), max_train, seed)
    model = setup.models[0]
    kw = dict(device=setup.device, amp=setup.amp, batch_size=batch_size, num_workers=num_workers)
    q_feats = features(model, TransformedSubset(query_ds, q_idx, model_tf), **kw)  # (Q, 4096)
    t_feats = features(model, TransformedSubset(train_ds, t_idx, model_tf), **kw)  # (M, 4096)
    dist, nn_pos = nearest_neighbors(q_feats, t_feats, k)  # positions into t_idx
    nn_idx = torch.tensor([[t_idx[j] for j in row] for row in nn_pos.tolist()]).long()
    names = _names(setup, query_ds)
    rows = nn_idx.tolist()
    neighbor_images = [TransformedSubset(train_ds, row, display_tf).images() for row in rows]
    fig = plot_neighbors(
        TransformedSubset(query_ds, q_idx, display_tf).images(),
        neighbor_images,
        dist,
        out_path,
        query_labels=[names[t] for t in targets_of(query_ds, q_idx)],
        neighbor_labels=[[names[t] for t in targets_of(train_ds, row)] for row in rows],
    )
    return fig, NeighborResult(q_idx, nn_idx, dist, len(t_idx), len(train_ds))


def confusion_on(
    setup,
    source: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    max_images: int = 500,
    split: str = "val",
    batch_size: int = 64,
    num_workers: int = 0,
) -> tuple[Figure, Tensor]:
    """Confusion matrix on up to ``max_images`` evenly spaced images of ``split``."""
    ds = _open_checked(setup, source, split)
    indices = pick_indices(len(ds), max_images)
    probs = _probs(setup, ds, indices, batch_size, num_workers)
    targets = torch.tensor(targets_of(ds, indices))
    matrix = confusion_matrix(probs.argmax(1), targets, probs.shape[1])
    return plot_confusion(matrix, _names(setup, ds), out_path), matrix
