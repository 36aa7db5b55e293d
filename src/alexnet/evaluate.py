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
    per_class_accuracy: list[float | None] | None = None  # None: no image of the class
    confusion: list[list[int]] | None = None
    skipped: list[str] = field(default_factory=list)  # --skip-bad: the unreadable images
    weights: str = ""  # which weights, where a file holds an EMA too ("EMA (decay 0.999)")
    classes_found: int = 0  # the checkpoint's classes the data holds
    classes_line: str = ""  # "3 of the checkpoint's 1000 classes found in DIR (by WordNet id)"

    def to_dict(self) -> dict:
        return asdict(self)


def _relabelled(batches: Iterable, lut: torch.Tensor) -> Iterator:
    """(images, target) batches with each target replaced by ``lut[target]``."""
    for images, target in batches:
        yield images, lut[target]


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
    if cm is not None:  # None for a class the data does not hold
        totals = cm.sum(1).tolist()
        per_class = [d / t if t else None for d, t in zip(cm.diag().tolist(), totals, strict=True)]
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
    from alexnet.data.classes import map_classes
    from alexnet.data.images import display_path
    from alexnet.data.readable import ReadableOnly, collate_readable, readable_batches
    from alexnet.distributed import init_distributed
    from alexnet.errors import UserError
    from alexnet.inference import EnsembleTransform, load_for_inference, weights_line
    from alexnet.sampler import ShardSampler

    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}", exit_code=2)
    if max_batches is not None and max_batches < 1:
        raise UserError(f"--eval-batches must be >= 1, got {max_batches}", exit_code=2)
    setup = load_for_inference(
        checkpoints, device=device, amp=amp, channels_last=channels_last, weights=weights
    )
    dist = init_distributed(setup.device.type)
    transform = EnsembleTransform(setup, ten_crop)
    ds = build_dataset(data, split, transform)
    where = display_path(ds.root) if hasattr(ds, "root") else f"{data} [{split}]"
    cmap = map_classes(setup.classes, ds.classes, where)
    # Each 10-crop sample is ten images: keep the number of images per batch comparable.
    bs = max(1, batch_size // 10) if ten_crop else batch_size
    # --eval-batches: that many batches per process, spread evenly through the split
    limit = None if max_batches is None else max_batches * bs * dist.world_size
    loader = DataLoader(
        ReadableOnly(ds) if skip_bad else ds,
        batch_size=bs,
        sampler=ShardSampler(len(ds), dist.rank, dist.world_size, limit=limit),
        num_workers=workers,
        pin_memory=setup.device.type == "cuda",
        collate_fn=collate_readable if skip_bad else None,
    )
    skipped: list[str] = []
    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=len(loader), desc="evaluate", unit="batch", leave=False)
    batches = readable_batches(loader, skipped) if skip_bad else loader
    if not cmap.identity:  # the data's class i is the checkpoint's output cmap.indices[i]
        batches = _relabelled(batches, torch.tensor(cmap.indices))
    try:
        res = evaluate(
            setup.modules,
            batches,
            setup.device,
            amp=setup.amp,
            channels_last=setup.channels_last,
            num_classes=len(setup.classes),
            confusion=confusion,
            ten_crop=ten_crop,
            progress=bar,
            groups=transform.groups,
        )
    finally:
        if bar is not None:
            bar.close()
    res.skipped = skipped
    res.classes_found, res.classes_line = len(cmap.indices), cmap.sentence(where)
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
