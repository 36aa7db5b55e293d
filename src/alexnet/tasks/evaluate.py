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

import torch

from alexnet.engine.validate import EvalResult, evaluate


def _relabelled(batches: Iterable, lut: torch.Tensor) -> Iterator:
    """(images, target) batches with each target replaced by ``lut[target]``."""
    for images, target in batches:
        yield images, lut[target]


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
    from alexnet.engine.distributed import init_distributed
    from alexnet.engine.sampler import ShardSampler
    from alexnet.errors import UserError
    from alexnet.tasks.inference import EnsembleTransform, load_for_inference, weights_line

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
        from alexnet.progress import progress as progress_bar

        bar = progress_bar(total=len(loader), desc=f"evaluate {data} [{split}]", unit="batch")
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
