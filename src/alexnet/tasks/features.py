"""Batched FC7 features (§6.1), any layer's features of a whole split, and class
probabilities, reusable from Python.

The paper probes what the network has learned by comparing "the feature
activations induced by an image at the last, 4096-dimensional hidden layer":
images whose fc7 vectors are close in Euclidean distance are similar to the
network (Figure 4, right). ``features`` returns exactly that vector (fc7 after
its ReLU, before dropout, i.e. ``forward_head(..., pre_logits=True)``) for
every image, in eval mode and without gradients::

    import alexnet
    from alexnet.tasks.loading import load_model

    loaded = load_model("runs/demo/checkpoints/best.pt")
    fc7 = alexnet.features(loaded, images)        # (N, 4096) float32 on the CPU
    dist, idx = nearest_neighbors(fc7[:5], fc7, k=6)

Inputs are a (N, 3, S, S) tensor, a sequence of (3, S, S) tensors, or a
dataset whose items are tensors or ``(tensor, target)`` pairs, already
preprocessed for the model (``alexnet.data.eval_transform``).

``extract_features`` (the ``alexnet features`` command) runs a weights file over
every image of a split with the model's own preprocessing and streams one layer's
activations into an ``.npz``: ``pool5`` (256 x 6 x 6 = 9216, flattened), ``fc6`` or
``fc7`` (4096, after their ReLU, before dropout). The layers are found through the
registry (``model_info(name).layers``), for every registered model.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from alexnet.errors import UserError

__all__ = [
    "LAYERS",
    "FeatureFile",
    "class_probabilities",
    "extract_features",
    "features",
    "layer_features",
    "nearest_neighbors",
]

FC7_DIM = 4096
LAYERS = ("pool5", "fc6", "fc7")  # what extract_features can take


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


@contextlib.contextmanager
def _tap(model: nn.Module, layer: str) -> Iterator[list[Tensor]]:
    """Collect ``layer``'s activation of each forward pass of ``model`` into the yielded
    list: pool5 is the input of fc6 (flattened, (B, 9216)); fc6 and fc7 are their output
    after ReLU (every AlexNet applies one right after them; taken here, before the
    in-place ReLU and the dropout), (B, 4096). The module comes from the registry."""
    from alexnet.models import model_info

    if layer not in LAYERS:
        raise UserError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    name = getattr(model, "model_name", None)
    if name is None:
        raise TypeError("the model has no model_name: build it with create_model or load it")
    module = model.get_submodule(model_info(name).layers["fc6" if layer == "pool5" else layer])
    caught: list[Tensor] = []
    if layer == "pool5":
        hook = module.register_forward_hook(lambda m, args, out: caught.append(args[0].flatten(1)))
    else:
        hook = module.register_forward_hook(lambda m, args, out: caught.append(F.relu(out)))
    try:
        yield caught
    finally:
        hook.remove()


@torch.no_grad()
def layer_features(model_or_loaded: Any, x: Tensor, layer: str = "fc7") -> Tensor:
    """One batch's activations at ``layer`` (``LAYERS``): (B, 9216) or (B, 4096), the
    model's dtype and device; call in eval mode."""
    model = _unwrap(model_or_loaded)
    with _tap(model, layer) as caught:
        model(x)
    return caught[-1]


@dataclass
class FeatureFile:
    """What ``extract_features`` wrote: ``path``, ``images`` x ``dim`` of ``layer``."""

    path: Path
    layer: str
    images: int
    dim: int
    weights: str = ""  # which, where the file holds an EMA too: "EMA (decay 0.999)"
    skipped: list[str] = field(default_factory=list)  # skip_bad: the unreadable images


def _relative_paths(ds: Any) -> list[str]:
    """Image paths relative to the split folder (ImageFolder), else the item indices."""
    root, samples = getattr(ds, "root", None), getattr(ds, "samples", None)
    if root is not None and samples is not None:
        return [os.path.relpath(p, root) for p, _ in samples]
    return [str(i) for i in range(len(ds))]


@torch.no_grad()
def extract_features(
    weights: str | os.PathLike,
    data: str | os.PathLike,
    layer: str,
    out: str | os.PathLike,
    *,
    split: str = "val",
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    amp: str = "off",
    progress: bool = False,
    weights_choice: str = "auto",
    skip_bad: bool = False,
) -> FeatureFile:
    """``layer``'s activations for every image of ``data``'s ``split`` -> ``out`` (.npz).

    ``weights``: any file ``alexnet.tasks.loading.load_model`` reads; each image gets the
    model's own centre-crop preprocessing. The .npz holds ``features`` (N, D) float32,
    ``labels`` (N,) int64, ``paths`` (N,) str (relative to the split folder, or item
    indices where the data has no files), ``classes`` (C,) str (the data's) and ``layer``.
    Batches are streamed to the file (memory: one batch); it appears only when complete,
    and a failed write (a full disk) is a UserError naming ``out`` with nothing left behind.
    ``weights_choice``: as ``loading.load_model`` (the EMA where the run kept one).
    ``skip_bad``: unreadable images are left out of every array (listed in ``skipped``);
    otherwise the first one stops the run.
    """
    from torch.utils.data import DataLoader

    from alexnet.data import build_dataset
    from alexnet.data.readable import ReadableOnly, Unreadable, collate_readable
    from alexnet.tasks.inference import eval_transform_for, load_for_inference

    if layer not in LAYERS:
        raise UserError(f"--layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}", exit_code=2)
    setup = load_for_inference([os.fspath(weights)], device=device, amp=amp, weights=weights_choice)
    ds = build_dataset(data, split, eval_transform_for(setup))
    n, model = len(ds), setup.modules[0]
    if n == 0:
        raise UserError(f"{data} [{split}] has no images")
    loader = DataLoader(
        ReadableOnly(ds) if skip_bad else ds,
        batch_size=batch_size,
        num_workers=workers,
        shuffle=False,
        collate_fn=collate_readable if skip_bad else None,
    )
    bar = None
    if progress:
        from alexnet.progress import progress as progress_bar

        bar = progress_bar(total=n, desc=f"features {layer} of {data} [{split}]", unit="img")
    skipped: list[Unreadable] = []
    try:
        if skip_bad:
            dim, n = _write_readable_features(out, loader, layer, ds, model, setup, bar, skipped)
        else:
            dim = _write_features(out, loader, n, layer, ds, model, setup, bar)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"disk full while writing {out}; nothing was written") from None
        raise UserError(f"could not write {out}: {e.strerror or e}") from None
    finally:
        if bar is not None:
            bar.close()
    messages = [x.message for x in skipped]
    return FeatureFile(Path(out), layer, n, dim, setup.models[0].weights, messages)


def _write_features(out, loader, n: int, layer: str, ds, model, setup, bar) -> int:
    """Stream ``layer``'s activations of every batch into ``out`` (.npz); the feature size."""
    from alexnet.runtime import autocast, to_device
    from alexnet.tasks.npz import NpzWriter

    labels, stream, done = np.empty(n, np.int64), None, 0
    with NpzWriter(out) as npz, _tap(model, layer) as caught:
        for x, y in loader:
            with autocast(setup.device, setup.amp):
                model(to_device(x, setup.device, setup.channels_last))
            f = caught.pop().float().cpu().numpy()  # (B, D)
            if stream is None:
                stream = npz.stream("features", (n, f.shape[1]), np.float32)
            stream.write(f)
            labels[done : done + len(y)] = y.numpy()
            done += len(y)
            if bar is not None:
                bar.update(len(y))
        stream.close()
        _add_labels(npz, labels, _relative_paths(ds), ds, layer)
    return stream.shape[1]


def _add_labels(npz, labels: np.ndarray, paths: list[str], ds, layer: str) -> None:
    """The members beside ``features``: labels (N,), paths (N,), classes (C,), layer."""
    npz.add("labels", labels)
    npz.add("paths", np.array(paths, dtype=str))
    npz.add("classes", np.array(list(ds.classes), dtype=str))
    npz.add("layer", np.array(layer))


def _write_readable_features(out, loader, layer, ds, model, setup, bar, skipped) -> tuple[int, int]:
    """As ``_write_features`` over a ``collate_readable`` loader: the unreadable images
    are appended to ``skipped`` and left out. The .npy header needs the row count first,
    so the rows are spooled to a temporary file beside ``out`` and copied in at the end.
    -> (feature size, images written)."""
    import tempfile

    from alexnet.runtime import autocast, to_device
    from alexnet.tasks.npz import NpzWriter

    labels, keep, start, dim = [], [], 0, None
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=Path(out).parent) as spool, _tap(model, layer) as caught:
        for batch, bad in loader:
            skipped.extend(bad)
            gone = {x.index for x in bad}
            size = (0 if batch is None else len(batch[1])) + len(bad)
            keep.extend(i for i in range(start, start + size) if i not in gone)
            start += size
            if bar is not None:
                bar.update(size)
            if batch is None:
                continue
            x, y = batch
            with autocast(setup.device, setup.amp):
                model(to_device(x, setup.device, setup.channels_last))
            f = caught.pop().float().cpu().numpy()  # (B, D)
            dim = f.shape[1]
            spool.write(np.ascontiguousarray(f, np.float32).tobytes())
            labels.extend(y.tolist())
        if not keep:
            raise UserError(f"no image of the split could be read ({len(skipped)} unreadable)")
        spool.seek(0)
        paths = _relative_paths(ds)
        with NpzWriter(out) as npz:
            stream = npz.stream("features", (len(keep), dim), np.float32)
            rows = max(1, (64 << 20) // (4 * dim))  # copy 64 MiB at a time
            for begin in range(0, len(keep), rows):
                count = min(rows, len(keep) - begin)
                stream.write(
                    np.frombuffer(spool.read(4 * dim * count), np.float32).reshape(-1, dim)
                )
            stream.close()
            _add_labels(npz, np.array(labels, np.int64), [paths[i] for i in keep], ds, layer)
    return dim, len(keep)
