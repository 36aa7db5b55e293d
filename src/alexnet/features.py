"""Batched FC7 features (§6.1) and class probabilities, reusable from Python.

The paper probes what the network has learned by comparing "the feature
activations induced by an image at the last, 4096-dimensional hidden layer":
images whose fc7 vectors are close in Euclidean distance are similar to the
network (Figure 4, right). ``features`` returns exactly that vector (fc7 after
its ReLU, before dropout, i.e. ``forward_head(..., pre_logits=True)``) for
every image, in eval mode and without gradients::

    import alexnet
    from alexnet.loading import load_model

    loaded = load_model("runs/demo/checkpoints/best.pt")
    fc7 = alexnet.features(loaded, images)        # (N, 4096) float32 on the CPU
    dist, idx = nearest_neighbors(fc7[:5], fc7, k=6)

Inputs are a (N, 3, S, S) tensor, a sequence of (3, S, S) tensors, or a
dataset whose items are tensors or ``(tensor, target)`` pairs, already
preprocessed for the model (``alexnet.data.eval_transform``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from alexnet.errors import UserError

__all__ = ["class_probabilities", "features", "nearest_neighbors"]

FC7_DIM = 4096


def _unwrap(model_or_loaded: Any) -> nn.Module:
    model = getattr(model_or_loaded, "model", model_or_loaded)  # LoadedModel -> its model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module or a LoadedModel, got {type(model).__name__}")
    return model


def _batches(inputs: Any, batch_size: int, num_workers: int) -> Iterator[Tensor]:
    """Yield (B, 3, S, S) image batches from a tensor, a list of tensors or a dataset."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(inputs, Tensor):
        if inputs.dim() == 3:
            inputs = inputs.unsqueeze(0)
        yield from inputs.split(batch_size)
        return
    loader = torch.utils.data.DataLoader(
        inputs, batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    for batch in loader:
        yield batch[0] if isinstance(batch, (list, tuple)) else batch


def _resolve(device: str | torch.device | None, model: nn.Module) -> torch.device:
    if device is None:
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    from alexnet.runtime import resolve_device

    return resolve_device(device) if isinstance(device, str) else device


@torch.no_grad()
def _run(
    model_or_loaded: Any,
    inputs: Any,
    head: Callable[[nn.Module, Tensor], Tensor],
    batch_size: int,
    device: str | torch.device | None,
    amp: str,
    num_workers: int,
) -> Tensor:
    """Apply ``head`` batch by batch in eval mode; restore the model's mode; CPU float32 out."""
    from alexnet.runtime import autocast

    model = _unwrap(model_or_loaded)
    dev = _resolve(device, model)
    model.to(dev)
    was_training = model.training
    model.eval()
    outs = []
    try:
        for x in _batches(inputs, batch_size, num_workers):
            with autocast(dev, amp):
                outs.append(head(model, x.to(dev, non_blocking=True)).float().cpu())
    finally:
        model.train(was_training)
    if not outs:
        raise UserError("no images to extract features from (the input is empty)")
    return torch.cat(outs)


def _fc7(model: nn.Module, x: Tensor) -> Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)  # (B, 4096)


def _probs(model: nn.Module, x: Tensor) -> Tensor:
    return F.softmax(model(x).float(), dim=1)  # (B, C)


def features(
    model_or_loaded: Any,
    images_or_dataset: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    amp: str = "off",
    num_workers: int = 0,
) -> Tensor:
    """FC7 feature vectors, (N, 4096) float32 on the CPU, in input order.

    ``model_or_loaded`` is a model with ``forward_features``/``forward_head``
    (every ``create_model`` network) or a ``LoadedModel``. ``device`` None keeps
    the model where it is; "auto"/"cuda"/"cpu" moves it there. The model is
    run in eval mode (no dropout) and its training flag is restored afterwards.
    """
    return _run(model_or_loaded, images_or_dataset, _fc7, batch_size, device, amp, num_workers)


def class_probabilities(
    model_or_loaded: Any,
    images_or_dataset: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    amp: str = "off",
    num_workers: int = 0,
) -> Tensor:
    """Softmax outputs, (N, num_classes) float32 on the CPU, batched like ``features``."""
    return _run(model_or_loaded, images_or_dataset, _probs, batch_size, device, amp, num_workers)


def nearest_neighbors(
    queries: Tensor, database: Tensor, k: int = 6, chunk: int = 4096
) -> tuple[Tensor, Tensor]:
    """Euclidean k nearest rows of ``database`` for each query row (§6.1).

    (Q, D) and (M, D) -> distances (Q, k) ascending and indices (Q, k) into
    ``database``; k is capped at M. The database is scanned in chunks so a
    whole training set's fc7 vectors need not fit one distance matrix.
    """
    if queries.dim() != 2 or database.dim() != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"expected (Q, D) queries and (M, D) database, got {tuple(queries.shape)} "
            f"and {tuple(database.shape)}"
        )
    k = min(k, database.shape[0])
    q = queries.double()
    best_d = torch.full((q.shape[0], 0), float("inf"), dtype=torch.float64)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
    for start in range(0, database.shape[0], chunk):
        block = database[start : start + chunk].double()
        # exact differences, not the |a|^2 + |b|^2 - 2ab shortcut: a duplicate is at 0.0
        d = torch.cdist(q, block, compute_mode="donot_use_mm_for_euclid_dist")  # (Q, chunk)
        idx = torch.arange(start, start + d.shape[1]).expand_as(d)
        d, idx = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
        best_d, order = d.topk(min(k, d.shape[1]), dim=1, largest=False, sorted=True)
        best_i = idx.gather(1, order)
    return best_d.float(), best_i
