"""The paper's full schedule on CIFAR-10: ``--preset paper`` on all 50,000 training images.

§5: "The heuristic which we followed was to divide the learning rate by 10 when the
validation error rate stopped improving with the current learning rate. The learning rate
was initialized at 0.01 and reduced three times prior to termination." This command runs
exactly that on one device::

    alexnet reproduce cifar10 --full --data ../shared/data/cifar10-jpeg.tar.gz --out runs/full

It packs CIFAR-10's 50,000 training and 10,000 test JPEGs once into a store at 256x256
(``alexnet prepare``'s format, ``OUT/store-256``: 11.8 GB; reused by every later run whose
images are the same, or give ``--store DIR``), trains ``--preset paper`` on it with the
augmentation done on the device in whole batches (random 227 crops, mirrors, PCA
lighting), divides the learning rate by 10 each time the test error has not improved for
more than ``--patience`` epochs, and stops at the plateau after the third division, or at
``--max-epochs`` (90, the paper's ImageNet run). The final weights are then tested on the
10,000 test images with the centre crop and with ten crops. ``OUT/result.json`` and
``OUT/result.md`` hold the error and learning rate of every epoch, where the three
divisions came, both test errors, the wall time and the images/s of training and testing;
the same lines go to the terminal. An interrupted run continues where it stopped when the
command is repeated (``OUT/run/checkpoints/last.pt``).

On a CPU it runs at a tiny scale for a check: ``--train-per-class``, ``--test-per-class``,
``--max-epochs``, ``--patience`` and ``--config FILE`` (training settings over the preset:
``model_kwargs: {width: 0.125}``, ``batch_size``, ``min_improvement``) shrink it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alexnet.engine.callbacks import Callback
from alexnet.errors import UserError

TEST_BATCH = 500  # test images per batch (10-crop: 50 images, 500 crops)


@dataclass
class FullConfig:
    """Options of ``alexnet reproduce cifar10 --full``."""

    data: str
    """cifar10-jpeg.tar.gz or its extracted folder (train/<class>/*.jpg, test/<class>/*.jpg)."""
    out: str
    """Directory for the store, the run, result.json and result.md."""
    max_epochs: int = 90
    """Epoch cap: the run stops here if the third division's plateau has not come."""
    patience: int | None = None
    """Epochs without a lower test error before the learning rate is divided (and, after the
    third division, before the run stops); None: the preset's (2)."""
    train_per_class: int | None = None
    """Training images per class, a seeded sample; None: all 5,000."""
    test_per_class: int | None = None
    """Test images per class, a seeded sample; None: all 1,000."""
    store: str | None = None
    """The packed store, made once and reused; None: OUT/store-<resize>."""
    init: str = "paper"
    """Initialisation: paper (§5) or caffe (Caffe's fillers)."""
    seed: int = 0
    workers: int | None = None
    """Loader processes (training, where the store is not augmented in the step, and testing);
    None: one per core, at most 8."""
    config: str | None = None
    """A YAML file of further training settings over ``--preset paper``; this command's
    options (data, out, epochs, seed, patience) win over it."""
    overrides: dict = field(default_factory=dict)
    """Settings over the preset and ``config`` (``model_kwargs`` merged under ``init``)."""

    def __post_init__(self) -> None:
        errors = []
        for name in ("max_epochs", "train_per_class", "test_per_class"):
            v = getattr(self, name)
            if v is not None and v < 1:
                errors.append(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        for name in ("patience", "workers"):
            v = getattr(self, name)
            if v is not None and v < 0:
                errors.append(f"--{name} must be >= 0, got {v}")
        if self.init not in ("paper", "caffe"):
            errors.append(f"--init must be paper or caffe, got {self.init!r}")
        if errors:
            raise UserError("; ".join(errors), exit_code=2)


class PlateauStop(Callback):
    """Ends the run at the plateau after the last division (§5's "prior to termination"):
    ``max_decays`` divisions made and no better test error for more than ``patience``
    epochs since. Also on start, so that repeating a finished command trains nothing."""

    def __init__(self) -> None:
        self.reached = self.ended_before = False
        self.schedule: dict = {}

    def _check(self, trainer) -> None:
        s = trainer.schedule
        if s.kind == "plateau" and s.decays >= s.max_decays and s.bad_epochs > s.patience:
            self.reached = True
            trainer.cfg.epochs = trainer.epoch  # the loop's condition: no further epoch

    def on_train_start(self, trainer) -> None:
        self._check(trainer)
        self.ended_before = self.reached

    def on_epoch_end(self, trainer, record) -> None:
        self._check(trainer)

    def on_train_end(self, trainer, summary) -> None:
        self.schedule = trainer.schedule.state_dict()


def train_config(cfg: FullConfig, data: str | None, out: Path):
    """The run's TrainConfig: ``--preset paper``, then ``cfg.config``, then the command's."""
    from alexnet.engine.config import resolve_config

    overrides = dict(cfg.overrides)
    model_kwargs = {**overrides.pop("model_kwargs", {}), "init": cfg.init}
    run = resolve_config(
        "paper",
        cfg.config,
        overrides={
            "workers": cfg.workers,
            **overrides,
            "data": data,
            "out": str(out / "run"),
            "epochs": cfg.max_epochs,
            "seed": cfg.seed,
            "patience": cfg.patience,
            "quiet": True,
            "model_kwargs": model_kwargs,
        },
    )
    run.data = data  # the store, once made (a --config's data is not this command's)
    try:
        run.validate()  # every bad setting at once, before the store is made
    except UserError as e:  # its list on one line, as this command's other errors
        raise UserError(str(e).replace(":\n  ", ": ").replace("\n  ", "; "), exit_code=2) from None
    if run.schedule != "plateau":
        raise UserError(
            f"--config {cfg.config}: schedule {run.schedule!r}; --full runs §5's plateau "
            "schedule (leave schedule out)",
            exit_code=2,
        )
    return run


def run_full(cfg: FullConfig, log: Callable[[str], None] = print) -> dict:
    """Store, train to the third division's plateau, test; returns what result.json holds."""
    from alexnet.data.store import read_meta
    from alexnet.engine.train import train
    from alexnet.reproduce.full_report import format_full_result, write_result

    t0 = time.time()
    out = Path(cfg.out)
    run_cfg = train_config(cfg, None, out)
    pre = run_cfg.preprocessing()
    store, store_note = ensure_store(cfg, out, pre["resize"], pre["resize_mode"])
    log(store_note)
    run_cfg.data = str(store)
    stop = PlateauStop()
    resume = "auto" if (out / "run" / "checkpoints" / "last.pt").exists() else None
    log(
        f"training --preset paper for at most {cfg.max_epochs} epochs: lr {run_cfg.lr:g}, "
        f"/10 after {run_cfg.patience + 1} epoch(s) without a lower test error, "
        f"{run_cfg.max_decays} times, then to the next plateau"
        + (" (continuing the run in OUT/run)" if resume else "")
    )
    train(run_cfg, resume=resume, overwrite=resume is None, callbacks=[stop])
    if stop.ended_before:
        log("the run in OUT/run had already ended at the plateau after the last division")
    records = [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    result = {
        "config": asdict(cfg),
        "store": str(store),
        "train_images": read_meta(store)["splits"]["train"]["count"],
        "device": _device_name(run_cfg.device),
        **schedule_result(records, stop, run_cfg.max_decays),
        **test_result(cfg, run_cfg, out / "run" / "checkpoints" / "last.pt", store),
    }
    result["wall_seconds"] = time.time() - t0  # this command's, store and testing included
    result["continued"] = resume is not None
    result["train_seconds"] = sum(r["seconds"] for r in records)
    write_result(out, result)
    log(format_full_result(result))
    return result


def ensure_store(cfg: FullConfig, out: Path, size: int, resize_mode: str) -> tuple[Path, str]:
    """The packed store of the (sampled) images: made once, reused while its images are
    the same ones (meta.json's digests of the files' names and sizes). -> (path, a line)."""
    from alexnet.data import prepare_store
    from alexnet.reproduce.method import make_subset, source_root

    if cfg.train_per_class is None and cfg.test_per_class is None:
        folder = source_root(cfg.data)
    else:
        folder = make_subset(cfg.data, out, cfg.train_per_class, cfg.test_per_class, cfg.seed)
    store = Path(cfg.store) if cfg.store else out / f"store-{size}"
    if (store / "meta.json").is_file():
        problem = _store_mismatch(store, folder, size, resize_mode)
        if problem is None:
            return store, f"store: {store} (reused)"
        if cfg.store:  # the user's: never replaced behind their back
            raise UserError(f"--store {store}: {problem}; give another --store or remove it")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    report = prepare_store(
        folder, store, size=size, resize_mode=resize_mode, workers=os.cpu_count() or 1, force=True
    )
    n = report.written
    return store, (
        f"store: {store} made from {folder} at {size}x{size} ({n['train']} training, "
        f"{n['val']} test images, {time.time() - t0:.0f} s)"
    )


def _store_mismatch(store: Path, folder: Path, size: int, resize_mode: str) -> str | None:
    from alexnet.data.fingerprint import files_digest
    from alexnet.data.folder import find_split_dir, scan_split
    from alexnet.data.store import read_meta

    meta = read_meta(store)
    if meta.get("size") != size or meta.get("resize_mode", "square") != resize_mode:
        held = f"{meta.get('size')} {meta.get('resize_mode')}"
        return f"it holds {held} images, the run takes {size} {resize_mode}"
    for split in ("train", "val"):
        split_dir = find_split_dir(folder, split)
        digest = files_digest(split_dir, (p for p, _ in scan_split(split_dir)[0]))
        if meta["splits"][split].get("files_sha256") != digest:
            return f"its {split} images are not those of {folder}"
    return None


def schedule_result(records: list[dict], stop: PlateauStop, max_decays: int) -> dict:
    """Per-epoch errors and learning rates, the epochs after which it was divided, and why
    the run ended."""
    lrs = [r["lr"] for r in records]
    drops = [records[i]["epoch"] for i in range(len(lrs) - 1) if lrs[i + 1] < lrs[i] * 0.999]
    if stop.schedule.get("decays", 0) > len(drops) and records:  # divided after the last one
        drops.append(records[-1]["epoch"])
    keys = ("epoch", "lr", "train_loss", "train_top1_error", "val_top1_error", "val_top5_error")
    epochs = [
        {**{k: r[k] for k in keys}, "images_per_second": r["images_per_second"],
         "seconds": r["seconds"], "lr_divided": r["epoch"] in drops}
        for r in records
    ]  # fmt: skip
    ips = [r["images_per_second"] for r in records if r.get("images_per_second")]
    return {
        "epochs": epochs,
        "drops": drops,
        "stopped": "plateau" if stop.reached else "max_epochs",
        "max_decays": max_decays,
        "train_images_per_second": sum(ips) / len(ips) if ips else 0.0,
    }


def test_result(cfg: FullConfig, run_cfg, checkpoint: Path, store: Path) -> dict:
    """Centre-crop and 10-crop top-1/top-5 errors of the final weights on the test split,
    with the test images/s of each."""
    from alexnet.engine.setup import default_workers
    from alexnet.tasks.evaluate import evaluate_checkpoints

    workers = cfg.workers if cfg.workers is not None else default_workers()
    out = {}
    for name, ten_crop in (("centre", False), ("ten_crop", True)):
        t0 = time.time()
        res = evaluate_checkpoints(
            [str(checkpoint)], str(store), ten_crop=ten_crop, batch_size=TEST_BATCH,
            workers=workers, device=run_cfg.device, amp=run_cfg.amp,
            channels_last=run_cfg.channels_last,
        )  # fmt: skip
        seconds = time.time() - t0
        out[f"{name}_top1_error"] = res.top1_error
        out[f"{name}_top5_error"] = res.top5_error
        out[f"{name}_images_per_second"] = res.images / max(seconds, 1e-9)
        out["test_images"] = res.images
    return out


def _device_name(device: str) -> str:
    import torch

    from alexnet.runtime import resolve_device

    dev = resolve_device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
