"""The paper's method on real photographs: ``--preset paper`` trained on CIFAR-10's JPEGs.

The faithful network and recipe (§2-§5: raw pixels minus the mean image, resize to 256,
random 227 crops and mirrors, PCA lighting, the paper's dropout and SGD at batch 128,
lr 0.01) trained from scratch on a class-balanced subset of CIFAR-10's 32x32 photos
upscaled to the paper's input, then tested as §4.1 and §6 test: the centre crop, the ten
crops (four corners, centre, mirrors), and the average of two models. Only the number
of images and epochs is reduced, to fit a 2-core CPU in 30 minutes. If §5's
initialisation leaves the loss at chance (Caffe's authors saw this with biases of 1),
it is shown, and the averaged models are trained with Caffe's fillers instead (``--init
caffe``, biases 0.1), the rest unchanged; one model with Caffe's fillers is trained beside
the first either way, for the comparison::

    alexnet reproduce cifar10 --data ../shared/data/cifar10-jpeg.tar.gz --out runs/cifar10

writes ``result.json`` and ``result.md`` (the table in docs/results.md) and one run
directory per model.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alexnet.errors import UserError

CHANCE = 0.9  # top-1 error of a 10-way guess


@dataclass
class MethodConfig:
    """Options of ``alexnet reproduce cifar10``."""

    data: str
    """cifar10-jpeg.tar.gz or its extracted folder (train/<class>/*.jpg, test/<class>/*.jpg)."""
    out: str
    """Directory for the subset, the runs, result.json and result.md."""
    train_per_class: int = 700
    """Training images per class (CIFAR-10 has 5,000)."""
    test_per_class: int = 100
    """Test images per class (CIFAR-10 has 1,000)."""
    epochs: int = 4
    """Epochs per model."""
    models: int = 2
    """Models averaged (§6 averaged five)."""
    init: str = "paper"
    """Initialisation of the first model: paper (§5); caffe is tried when paper stalls."""
    seed: int = 0
    workers: int | None = None
    config: str | None = None
    """A YAML file of further training settings over ``--preset paper`` (``alexnet train
    --config``); the command's own options win over it."""
    overrides: dict = field(default_factory=dict)
    """Further settings of every run over ``--preset paper`` (a quick check: batch_size);
    its ``model_kwargs`` are merged under each member's ``init``."""

    def __post_init__(self) -> None:
        errors = []
        for name in ("train_per_class", "test_per_class", "epochs", "models"):
            if getattr(self, name) < 1:
                errors.append(f"--{name.replace('_', '-')} must be >= 1")
        if self.init not in ("paper", "caffe"):
            errors.append(f"--init must be paper or caffe, got {self.init!r}")
        if errors:
            raise UserError("; ".join(errors), exit_code=2)


def source_root(source: str) -> Path:
    """The ImageFolder root (train/, test/ or val/) of a CIFAR-10 tarball (extracted once
    into the cache) or folder."""
    from alexnet.data.sources import _tree_root, extract_archive, source_kind

    kind, text = source_kind(source)
    return _tree_root(extract_archive(text)) if kind.name == "archive" else Path(text)


def make_subset(
    source: str, out: Path, train_per_class: int | None, test_per_class: int | None, seed: int
):
    """OUT/data/{train,val}/<class>/ of symbolic links to a seeded, class-balanced sample of
    the training and test images (the test split stands in for val); a count of None takes
    every image of the class. -> the folder. A subset drawn with other counts or another
    seed is replaced (its links only: the images stay)."""
    from alexnet.data.folder import find_split_dir

    root = source_root(source)
    dest = out / "data"
    tag = f"{root.resolve()}|{train_per_class}|{test_per_class}|{seed}"
    if (dest / "subset.txt").is_file():
        if (dest / "subset.txt").read_text() == tag:
            return dest
        shutil.rmtree(dest)  # links of another draw: they would mix with this one's
    rng = random.Random(seed)
    for split, per_class in (("train", train_per_class), ("val", test_per_class)):
        split_dir = find_split_dir(root, split)
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.iterdir() if p.is_file())
            if per_class is not None and len(files) < per_class:
                raise UserError(f"{class_dir} has {len(files)} images, fewer than {per_class}")
            target = dest / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for f in files if per_class is None else rng.sample(files, per_class):
                link = target / f.name
                if not link.exists():
                    os.symlink(f.resolve(), link)
    (dest / "subset.txt").write_text(tag)
    return dest


def _train_one(data: Path, out: Path, cfg: MethodConfig, seed: int, init: str) -> dict:
    from alexnet.engine.config import resolve_config
    from alexnet.engine.train import train

    overrides = dict(cfg.overrides)
    model_kwargs = {**overrides.pop("model_kwargs", {}), "init": init}
    run = resolve_config(
        "paper",
        cfg.config,
        overrides={
            "data": str(data),
            "out": str(out),
            "epochs": cfg.epochs,
            "seed": seed,
            "quiet": True,
            "workers": cfg.workers,
            "model_kwargs": model_kwargs,
            **overrides,
        },
    )
    t0 = time.time()
    resume = "auto" if (out / "checkpoints" / "last.pt").exists() else None
    train(run, resume=resume, overwrite=resume is None)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"init": init, "seed": seed, "minutes": (time.time() - t0) / 60, "epochs": records}


def stalled(run: dict) -> bool:
    """The loss never left chance: last validation error within 5 points of 90%."""
    return run["epochs"][-1]["val_top1_error"] >= CHANCE - 0.05


def _evaluate(checkpoints: list[Path], data: Path, ten_crop: bool) -> float:
    from alexnet.tasks.evaluate import evaluate_checkpoints

    res = evaluate_checkpoints([str(c) for c in checkpoints], str(data), ten_crop=ten_crop)
    return res.top1_error


def run_method(cfg: MethodConfig, log: Callable[[str], None] = print) -> dict:
    """Train, test and tabulate (module docstring); returns what result.json holds.

    Runs: the first model with ``cfg.init``; one with Caffe's fillers beside it (the
    comparison the Caffe authors' stalled runs call for); then the rest of the average,
    with ``cfg.init`` unless it stayed at chance, else with Caffe's fillers.
    """
    out = Path(cfg.out)
    t0 = time.time()
    data = make_subset(cfg.data, out, cfg.train_per_class, cfg.test_per_class, cfg.seed)
    counts = {split: len(list((data / split).glob("*/*"))) for split in ("train", "val")}
    log(f"subset: {counts['train']} training, {counts['val']} test images")
    runs = [_train_one(data, out / f"{cfg.init}-seed{cfg.seed}", cfg, cfg.seed, cfg.init)]
    log(_run_line(runs[-1]))
    if cfg.init != "caffe":
        runs.append(_train_one(data, out / f"caffe-seed{cfg.seed}", cfg, cfg.seed, "caffe"))
        log(_run_line(runs[-1]))
    init = cfg.init
    if stalled(runs[0]):
        init = "caffe"
        log(f"{cfg.init} initialisation stayed at chance: the average uses Caffe's fillers")
    for seed in [cfg.seed + i for i in range(1, cfg.models)]:
        runs.append(_train_one(data, out / f"{init}-seed{seed}", cfg, seed, init))
        log(_run_line(runs[-1]))
    members = [r for r in runs if r["init"] == init]
    table = [_row(f"{r['init']} init, seed {r['seed']}", [_ckpt(out, r)], data) for r in runs]
    table.append(
        _row(
            f"average of the {len(members)} {init}-init models",
            [_ckpt(out, r) for r in members],
            data,
        )
    )
    result = {
        "config": asdict(cfg),
        "runs": runs,
        "table": table,
        "stalled": [f"{r['init']}-seed{r['seed']}" for r in runs if stalled(r)],
        "images": counts,
        "minutes": (time.time() - t0) / 60,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "result.md").write_text(format_result(result) + "\n")
    log(format_result(result))
    return result


def _ckpt(out: Path, run: dict) -> Path:
    return out / f"{run['init']}-seed{run['seed']}" / "checkpoints" / "last.pt"


def _row(name: str, ckpts: list[Path], data: Path) -> dict:
    return {
        "model": name,
        "centre_top1_error": _evaluate(ckpts, data, ten_crop=False),
        "ten_crop_top1_error": _evaluate(ckpts, data, ten_crop=True),
    }


def _run_line(r: dict) -> str:
    errs = ", ".join(f"{e['val_top1_error']:.1%}" for e in r["epochs"])
    loss = r["epochs"][0]["train_loss"]
    return (
        f"{r['init']} init, seed {r['seed']}: val top-1 error by epoch {errs} "
        f"(epoch-1 train loss {loss:.3f}, ln 10 = {math.log(10):.3f}; {r['minutes']:.1f} min)"
    )


def format_result(r: dict) -> str:
    c = r["config"]
    n = r.get("images") or {  # results written before the counts were kept
        "train": c["train_per_class"] * 10,
        "val": c["test_per_class"] * 10,
    }
    lines = [
        f"CIFAR-10, {n['train']} training / {n['val']} test "
        f"images upscaled to 227, `--preset paper`, {c['epochs']} epochs per model "
        f"({r['minutes']:.0f} min in all):",
        "",
        "| model | val top-1 error by epoch | centre crop top-1 error | 10-crop top-1 error |",
        "|---|---|---|---|",
    ]
    by_name = {f"{x['init']} init, seed {x['seed']}": x for x in r["runs"]}
    for row in r["table"]:
        run = by_name.get(row["model"])
        epochs = ", ".join(f"{e['val_top1_error']:.1%}" for e in run["epochs"]) if run else ""
        lines.append(
            f"| {row['model']} | {epochs} | {row['centre_top1_error']:.1%} | "
            f"{row['ten_crop_top1_error']:.1%} |"
        )
    if r["stalled"]:
        lines.append(f"\nStayed at chance (90% error): {', '.join(r['stalled'])}.")
    return "\n".join(lines)
