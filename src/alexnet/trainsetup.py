"""Building the pieces of a training run from its config: data loaders, model, optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from alexnet.config import TrainConfig
from alexnet.distributed import DistInfo, barrier
from alexnet.errors import UserError
from alexnet.models import create_model
from alexnet.runtime import prepare_model
from alexnet.sampler import ResumableSampler, ShardSampler


@dataclass
class DataBundle:
    source: str
    classes: list[str]
    train_size: int
    val_size: int
    sampler: ResumableSampler
    train_loader: DataLoader
    val_loader: DataLoader
    steps_per_epoch: int
    preprocessing: dict
    datasets: tuple = ()  # (train, val) base datasets, for their scan and skip reports

    def scan_summary(self) -> str:
        """What the folder scans found besides images (non-image files, symlink loops)."""
        parts = [
            f"{name}: {ds.report.summary()}"
            for name, ds in zip(("train", "val"), self.datasets, strict=False)
            if getattr(ds, "report", None) is not None
            and (ds.report.ignored or ds.report.revisited_dirs)
        ]
        return "; ".join(parts)

    def skipped(self) -> int:
        """Unreadable images skipped so far in this process (--skip-bad; workers report
        their own as warnings)."""
        return sum(len(getattr(ds, "bad_files", ())) for ds in self.datasets)


def demo_root(spec: dict) -> Path:
    """Where the demo dataset with these options is cached (under alexnet's cache dir)."""
    from alexnet.data._paths import cache_dir

    tag = "-".join(f"{k}{v}" for k, v in sorted(spec.items())) or "default"
    return cache_dir() / f"demo-{tag}"


def resolve_source(cfg: TrainConfig, dist: DistInfo) -> str:
    """The dataset to read: cfg.data, or the demo dataset (generated once, by rank 0)."""
    if cfg.data is not None:
        return cfg.data
    from alexnet.data import make_demo_dataset

    root = demo_root(cfg.demo)
    if dist.is_main:
        make_demo_dataset(root, **cfg.demo)
    barrier()
    return str(root)


def dataset_stats(source: str, dist: DistInfo):
    """Training-set statistics: cached, else computed and cached by rank 0 (§4.1's PCA
    and the mean), else ImageNet's documented values."""
    from alexnet.data import resolve_stats

    if dist.is_main:
        stats = resolve_stats(source)
    barrier()
    if not dist.is_main:
        stats = resolve_stats(source, compute=False)
    return stats


def build_data(cfg: TrainConfig, dist: DistInfo, device: torch.device) -> DataBundle:
    from alexnet.data import SeededDataset, build_dataset, eval_transform, train_transform

    source = resolve_source(cfg, dist)
    stats = dataset_stats(source, dist)
    common = {"resize": cfg.resize, "normalize": cfg.normalize}
    train_tf = train_transform(
        cfg.input_size, stats, lighting=cfg.lighting, color_jitter=cfg.color_jitter, **common
    )
    val_tf = eval_transform(cfg.input_size, stats, **common)
    train_base = build_dataset(source, "train", train_tf, skip_bad=cfg.skip_bad)
    val_ds = build_dataset(source, "val", val_tf, skip_bad=cfg.skip_bad)
    classes = list(train_base.classes)
    if list(val_ds.classes) != classes:
        raise UserError(
            f"{source}: the train and val splits name different classes "
            f"({len(classes)} vs {len(val_ds.classes)})"
        )
    sampler = ResumableSampler(len(train_base), cfg.seed, dist.rank, dist.world_size)
    steps = sampler.num_samples // cfg.batch_size
    if steps == 0:
        raise UserError(
            f"{source}: the training split has {len(train_base)} images per "
            f"process, fewer than --batch-size {cfg.batch_size}",
            exit_code=2,
        )
    pin = device.type == "cuda"
    workers = cfg.workers
    train_loader = DataLoader(
        SeededDataset(train_base, cfg.seed),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=True,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(cfg.seed),
        prefetch_factor=4 if workers else None,
    )
    val_loader = DataLoader(
        val_ds,
        batch_size=cfg.batch_size,
        sampler=ShardSampler(len(val_ds), dist.rank, dist.world_size),
        num_workers=workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    preprocessing = {
        "input_size": cfg.input_size,
        "resize": cfg.resize,
        "normalize": cfg.normalize,
        "stats": (
            stats.to_dict(embed_mean_image=cfg.normalize == "pixel") if stats is not None else None
        ),
    }
    return DataBundle(
        source,
        classes,
        len(train_base),
        len(val_ds),
        sampler,
        train_loader,
        val_loader,
        steps,
        preprocessing,
        (train_base, val_ds),
    )


def model_kwargs_for(cfg: TrainConfig) -> dict:
    kwargs = dict(cfg.model_kwargs)
    if cfg.model in ("alexnet", "alexnet_bn"):
        kwargs.setdefault("input_size", cfg.input_size)
    return kwargs


def build_model(
    cfg: TrainConfig, num_classes: int, device: torch.device, channels_last: bool, dist: DistInfo
) -> tuple[nn.Module, nn.Module, dict]:
    """(the model to call, the unwrapped model to save, its create_model kwargs)."""
    kwargs = model_kwargs_for(cfg)
    try:
        model = create_model(cfg.model, num_classes=num_classes, **kwargs)
    except ValueError as e:
        raise UserError(str(e), exit_code=2) from None
    if cfg.model_parallel:
        from alexnet.parallel import wrap_model_parallel

        model = wrap_model_parallel(model, cfg.model_parallel)
        if channels_last:
            model.to(memory_format=torch.channels_last)
    else:
        prepare_model(model, device, channels_last)
    unwrapped = model
    if dist.enabled:
        # SyncBatchNorm needs CUDA; on the CPU each rank normalises with its own batch
        # statistics (DDP broadcasts rank 0's running statistics at every forward).
        if device.type == "cuda" and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            unwrapped = model
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        model = torch.compile(model)
    return model, unwrapped, kwargs


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD as §5 (weight decay on every weight, as the paper's update rule) or AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
