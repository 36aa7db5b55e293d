"""Top-1/top-5 error, centre crop or 10-crop, one model or an averaged ensemble (§4.1, §6).

10-crop: the softmax outputs of the four corner and centre crops and their
mirrors are averaged ("Test time" in §4.1). Ensembles average the softmax
outputs of several models ("averaging the predictions of five similar CNNs",
§6). The reported loss is the negative log of the averaged probability of the
true class, which for one model and one crop is the cross-entropy.

Under torchrun each rank evaluates a disjoint shard with no padding and the
counts are summed, so the result equals the single-process one exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, default_collate

from alexnet.distributed import all_reduce_sum
from alexnet.runtime import autocast, to_device


def accuracy_counts(probs: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)):
    """Number of samples whose target is among the top-k scores, for each k (k capped at C)."""
    maxk = min(max(ks), probs.shape[1])
    pred = probs.topk(maxk, dim=1).indices  # (B, maxk)
    hit = pred.eq(target[:, None])
    return [int(hit[:, : min(k, maxk)].any(dim=1).sum()) for k in ks]


@dataclass
class EvalResult:
    top1_error: float
    top5_error: float
    loss: float
    images: int
    ten_crop: bool = False
    per_class_accuracy: list[float] | None = None
    confusion: list[list[int]] | None = None
    skipped: list[str] = field(default_factory=list)  # --skip-bad: the unreadable images
    weights: str = ""  # which weights, where a file holds an EMA too ("EMA (decay 0.999)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Unreadable:
    """An image ``--skip-bad`` leaves out, in place of its sample: ``message`` names it."""

    message: str


class _ReadableOnly(Dataset):
    """``ds`` with each unreadable image given as an :class:`_Unreadable`, which
    :func:`_collate_readable` takes out of its batch: a bad image counts neither as an
    image nor in the metric (the dataset's own ``skip_bad`` puts the next good image in
    its place, right for training, wrong for a score)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds, self.classes = ds, ds.classes

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        from alexnet.data.images import BadImageError

        try:
            return self.ds[index]
        except BadImageError as e:
            return _Unreadable(str(e))


def _collate_readable(items: list) -> tuple:
    """(the readable samples collated, or None; the messages of the unreadable ones)."""
    good = [x for x in items if not isinstance(x, _Unreadable)]
    bad = [x.message for x in items if isinstance(x, _Unreadable)]
    return (default_collate(good) if good else None), bad


def _readable_batches(loader: Iterable, skipped: list[str]) -> Iterator:
    for batch, bad in loader:
        skipped.extend(bad)
        if batch is not None:
            yield batch


@torch.no_grad()
def predict_probs(
    models: Sequence[nn.Module],
    images: torch.Tensor | Sequence[torch.Tensor],
    device: torch.device,
    amp: str = "off",
    channels_last: bool = False,
    groups: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """Softmax averaged over models and, for (B, n_crops, 3, S, S) input, over crops -> (B, C).

    ``images`` is one batch for every model, or a sequence of batches with ``groups[i]``
    the indices of the models that take batch ``i`` (an ensemble whose models need
    different preprocessing: ``inference.EnsembleTransform``).
    """
    if isinstance(images, torch.Tensor):
        images, groups = [images], [list(range(len(models)))]
    total = None
    for x, members in zip(images, groups, strict=True):
        crops = x.shape[1] if x.dim() == 5 else 1
        x = to_device(x.flatten(0, 1) if x.dim() == 5 else x, device, channels_last)
        with autocast(device, amp):
            for i in members:
                p = F.softmax(models[i](x).float(), dim=1)
                p = p.view(-1, crops, p.shape[1]).mean(dim=1)
                total = p if total is None else total + p
    return total / len(models)


@torch.no_grad()
def evaluate(
    models: Sequence[nn.Module],
    loader: Iterable,
    device: torch.device,
    *,
    amp: str = "off",
    channels_last: bool = False,
    num_classes: int | None = None,
    max_batches: int | None = None,
    confusion: bool = False,
    ten_crop: bool = False,
    progress=None,
    groups: Sequence[Sequence[int]] | None = None,
) -> EvalResult:
    """Evaluate ``models`` (averaged) over ``loader`` of (images, targets) batches; the
    images are a tuple of inputs with ``groups`` as in :func:`predict_probs`."""
    for m in models:
        m.eval()
    n = c1 = c5 = 0
    nll = 0.0
    cm = None
    for i, (images, target) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        probs = predict_probs(models, images, device, amp, channels_last, groups)
        target = target.to(probs.device)
        a1, a5 = accuracy_counts(probs, target)
        c1, c5, n = c1 + a1, c5 + a5, n + target.numel()
        p_true = probs.gather(1, target[:, None]).clamp_min(1e-12)
        nll += float(-p_true.log().sum())
        if confusion:
            k = num_classes or probs.shape[1]
            if cm is None:
                cm = torch.zeros(k, k, dtype=torch.int64)
            idx = target.cpu() * k + probs.argmax(1).cpu()
            cm += torch.bincount(idx, minlength=k * k).view(k, k)
        if progress is not None:
            progress.update(1)
    n, c1, c5, nll = all_reduce_sum([n, c1, c5, nll], device)
    if cm is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        cm_dev = cm.to(device)
        torch.distributed.all_reduce(cm_dev)
        cm = cm_dev.cpu()
    if n == 0:
        return EvalResult(float("nan"), float("nan"), float("nan"), 0, ten_crop)
    per_class = None
    if cm is not None:
        totals = cm.sum(1).clamp_min(1)
        per_class = (cm.diag().double() / totals).tolist()
    return EvalResult(
        top1_error=1.0 - c1 / n,
        top5_error=1.0 - c5 / n,
        loss=nll / n,
        images=int(n),
        ten_crop=ten_crop,
        per_class_accuracy=per_class,
        confusion=cm.tolist() if cm is not None else None,
    )


def evaluate_checkpoints(
    checkpoints: Sequence[str],
    data: str,
    *,
    split: str = "val",
    ten_crop: bool = False,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    amp: str = "auto",
    channels_last: str = "auto",
    confusion: bool = False,
    max_batches: int | None = None,
    skip_bad: bool = False,
    progress: bool = False,
    weights: str = "auto",
) -> EvalResult:
    """Evaluate one checkpoint or the average of several on ``data``'s ``split``.

    ``skip_bad``: unreadable images are left out of the count and the metric (listed in
    ``skipped``). ``weights``: as ``loading.load_model`` (the EMA where the run kept one).
    Runs under torchrun too: each rank takes a disjoint shard and the counts are summed.
    """
    from torch.utils.data import DataLoader

    from alexnet.data import build_dataset
    from alexnet.distributed import init_distributed
    from alexnet.errors import UserError
    from alexnet.inference import (
        EnsembleTransform,
        load_for_inference,
        same_classes,
        weights_line,
    )
    from alexnet.sampler import ShardSampler

    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}", exit_code=2)
    if max_batches is not None and max_batches < 1:
        raise UserError(f"--max-batches must be >= 1, got {max_batches}", exit_code=2)
    setup = load_for_inference(
        checkpoints, device=device, amp=amp, channels_last=channels_last, weights=weights
    )
    dist = init_distributed(setup.device.type)
    transform = EnsembleTransform(setup, ten_crop)
    ds = build_dataset(data, split, transform)
    if not same_classes(setup.classes, ds.classes):
        raise UserError(
            f"{data} ({split}) has {len(ds.classes)} classes {list(ds.classes)[:3]}..., but the "
            f"checkpoint was trained on {len(setup.classes)} classes {setup.classes[:3]}..."
        )
    # Each 10-crop sample is ten images: keep the number of images per batch comparable.
    bs = max(1, batch_size // 10) if ten_crop else batch_size
    loader = DataLoader(
        _ReadableOnly(ds) if skip_bad else ds,
        batch_size=bs,
        sampler=ShardSampler(len(ds), dist.rank, dist.world_size),
        num_workers=workers,
        pin_memory=setup.device.type == "cuda",
        collate_fn=_collate_readable if skip_bad else None,
    )
    skipped: list[str] = []
    bar = None
    if progress and dist.is_main:
        from alexnet.progress import progress as progress_bar

        total = len(loader) if max_batches is None else min(len(loader), max_batches)
        bar = progress_bar(total=total, desc=f"evaluate {data} [{split}]", unit="batch")
    try:
        res = evaluate(
            setup.modules,
            _readable_batches(loader, skipped) if skip_bad else loader,
            setup.device,
            amp=setup.amp,
            channels_last=setup.channels_last,
            num_classes=len(setup.classes),
            max_batches=max_batches,
            confusion=confusion,
            ten_crop=ten_crop,
            progress=bar,
            groups=transform.groups,
        )
    finally:
        if bar is not None:
            bar.close()
    res.skipped = skipped
    res.weights = (weights_line(setup) or "").removeprefix("weights: ")
    if res.images == 0:
        why = f": all {len(skipped)} are unreadable" if skipped else ""
        raise UserError(f"{data} [{split}]: no image was evaluated{why}")
    if not math.isfinite(res.loss):
        raise UserError(
            f"{', '.join(map(str, checkpoints))}: the model's outputs on {data} [{split}] are "
            "NaN or infinite (its weights are finite but too large)"
        )
    return res
