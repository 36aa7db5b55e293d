"""Small stand-ins for what training produces, for the figure and report tests:
a demo ImageFolder of a few images, random-weight checkpoints in the documented
format, and a run directory laid out as ``alexnet train`` writes it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import alexnet
from alexnet.engine.checkpoint import CHECKPOINT_VERSION, save_checkpoint

EPOCHS = [
    {
        "epoch": e,
        "train_loss": 2.0 - 0.3 * e,
        "train_top1_error": 0.7 - 0.1 * e,
        "val_loss": 2.1 - 0.2 * e,
        "val_top1_error": [0.62, 0.41, 0.45][e - 1],
        "val_top5_error": [0.2, 0.1, 0.12][e - 1],
        "lr": 0.01,
        "images_per_second": 50.0,
        "seconds": 3.0,
    }
    for e in (1, 2, 3)
]


def make_demo(root: Path) -> tuple[Path, list[str]]:
    """4 classes, 3 training and 2 validation images each (64 px JPEGs)."""
    from alexnet.data import build_dataset, make_demo_dataset

    root = make_demo_dataset(root, train_per_class=3, val_per_class=2, num_classes=4, size=64)
    return Path(root), list(build_dataset(root, "val").classes)


def save_random_checkpoint(
    path: Path,
    model_name: str,
    classes: list[str],
    *,
    width: float = 0.125,
    convolutions_only: bool = False,
) -> Path:
    """Random weights at ``width`` (1/8 unless a test is about the full size).
    ``convolutions_only``: fc6..fc8 are broadcast zeros of their shapes (one float each in
    the file: 9 MB instead of 244 at full size), for a test that reads only the
    convolutions (Figure 3)."""
    torch.manual_seed(0)
    kwargs = {"init": "kaiming"} if model_name != "alexnet_owt" else {}
    if width != 1.0:
        kwargs["width"] = width
    model = alexnet.create_model(model_name, num_classes=len(classes), **kwargs)
    weights = model.state_dict()
    if convolutions_only:
        weights = {
            k: torch.zeros(()).expand(v.shape) if k.startswith("classifier") else v
            for k, v in weights.items()
        }
    size = 224 if model_name == "alexnet_owt" else 227
    state = {
        "format_version": CHECKPOINT_VERSION,
        "model": weights,
        "model_name": model_name,
        "model_kwargs": kwargs,
        "classes": classes,
        "preprocessing": {"input_size": size, "resize": 256, "normalize": "channel", "stats": None},
        "epoch": 3,
        "step": 30,
        "config": {"data": None},
    }
    return save_checkpoint(state, path)


def make_fake_run(
    run: Path, data: Path, classes: list[str], *, model_name: str = "alexnet"
) -> Path:
    """A run directory with every file the training issue specifies (random weights)."""
    from alexnet.outputs.viz import plot_curves

    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(
        f"model: {model_name}\ndata: {data}\nepochs: 3\nbatch_size: 8\n"
        'comment: "<script>alert(1)</script> & friends"\n'
    )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in EPOCHS))
    pick = {k: EPOCHS[1][k] for k in ("epoch", "val_top1_error", "val_top5_error")}
    last = {k: EPOCHS[2][k] for k in ("epoch", "val_top1_error", "val_top5_error")}
    summary = {"best": pick, "final": last, "epochs": 3, "wall_seconds": 9.5}
    (run / "summary.json").write_text(json.dumps({**summary, "images_per_second": 50.0}))
    plot_curves(EPOCHS, run / "plots" / "curves.png")
    save_random_checkpoint(run / "checkpoints" / "best.pt", model_name, classes)
    return run
