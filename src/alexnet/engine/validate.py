"""Error rates of a model over a loader: what the training loop validates with and what
``alexnet evaluate`` reports (``alexnet.tasks.evaluate``), centre crop or 10-crop (§4.1).

10-crop: the softmax outputs of the four corner and centre crops and their mirrors are
averaged ("Test time" in §4.1). Ensembles average the softmax outputs of several models
(§6). The reported loss is the negative log of the averaged probability of the true
class, which for one model and one crop is the cross-entropy. Under torchrun each rank
evaluates a disjoint shard with no padding and the counts are summed, so the result
equals the single-process one exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from alexnet.engine.distributed import all_reduce_sum
from alexnet.runtime import autocast, to_device


def hit_counts(probs: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)):
    """Number of samples whose target is among the top-k scores, for each k (k capped at
    C): an int64 tensor (len(ks),) on probs' device, so reading it is the caller's wait."""
    maxk = min(max(ks), probs.shape[1])
    pred = probs.topk(maxk, dim=1).indices  # (B, maxk)
    hit = pred.eq(target[:, None])
    return torch.stack([hit[:, : min(k, maxk)].any(dim=1).sum() for k in ks])


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
    n = 0
    hits = nll = None  # on the device, read once at the end: no wait per batch
    cm = None
    for i, (images, target) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        probs = predict_probs(models, images, device, amp, channels_last, groups)
        target = target.to(probs.device)
        h = hit_counts(probs, target)  # (top-1, top-5)
        n += target.numel()
        p_true = probs.gather(1, target[:, None]).clamp_min(1e-12)
        # float64: the sum of float32 logs depends on how the images fall into batches
        # (one process or several) at 1e-7; in float64 at 1e-15
        b = -p_true.double().log().sum()
        hits, nll = (h, b) if hits is None else (hits + h, nll + b)
        if confusion:
            k = num_classes or probs.shape[1]
            if cm is None:
                cm = torch.zeros(k, k, dtype=torch.int64)
            idx = target.cpu() * k + probs.argmax(1).cpu()
            cm += torch.bincount(idx, minlength=k * k).view(k, k)
        if progress is not None:
            progress.update(1)
    c1, c5 = hits.tolist() if hits is not None else (0, 0)
    nll = float(nll) if nll is not None else 0.0
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
