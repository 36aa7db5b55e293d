"""result.json and result.md of ``alexnet reproduce cifar10 --full`` (``full.py``): the
error and learning rate of every epoch with the /10 drops marked, the centre and 10-crop
test errors, the wall time and the images/s of training and testing."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_result(out: Path, result: dict) -> None:
    """result.json and result.md, each replaced whole (never half-written)."""
    for name, text in (
        ("result.json", json.dumps(result, indent=2) + "\n"),
        ("result.md", format_full_result(result) + "\n"),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def format_full_result(r: dict) -> str:
    c, e = r["config"], r["epochs"]
    train_n, test_n = f"{r['train_images']:,}", f"{r['test_images']:,}"
    end = (
        f"the plateau after the {r['max_decays']} divisions"
        if r["stopped"] == "plateau"
        else f"--max-epochs {c['max_epochs']}"
    )
    lines = [
        f"CIFAR-10, {train_n} training images upscaled to 227, `--preset paper` with the "
        f"plateau schedule, on {r['device']}: {len(e)} epochs, stopped at {end}; "
        f"learning rate divided by 10 after epoch(s) {', '.join(map(str, r['drops'])) or 'none'}.",
        "",
        "| epoch | lr | train loss | test top-1 error | train img/s | s |",
        "|---|---|---|---|---|---|",
    ]
    for x in e:
        mark = " (then /10)" if x["lr_divided"] else ""
        lines.append(
            f"| {x['epoch']} | {x['lr']:g}{mark} | {x['train_loss']:.3f} | "
            f"{x['val_top1_error']:.1%} | {x['images_per_second']:,.0f} | {x['seconds']:.0f} |"
        )
    lines += [
        "",
        f"| test ({test_n} images, final weights) | top-1 error | top-5 error | img/s |",
        "|---|---|---|---|",
    ]
    for name, key in (("centre crop", "centre"), ("10 crops", "ten_crop")):
        lines.append(
            f"| {name} | {r[f'{key}_top1_error']:.2%} | {r[f'{key}_top5_error']:.2%} | "
            f"{r[f'{key}_images_per_second']:,.0f} |"
        )
    lines.append(
        f"\nWall time {r['wall_seconds'] / 60:.1f} min"
        + (" (this command, which continued an earlier one's run)" if r["continued"] else "")
        + f"; training {r['train_seconds'] / 60:.1f} min in all, at "
        f"{r['train_images_per_second']:,.0f} img/s on average."
    )
    return "\n".join(lines)
