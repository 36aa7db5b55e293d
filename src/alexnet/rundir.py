"""The run directory: what a training run writes and how a second run may reuse it.

RUN/config.yaml          the resolved configuration
RUN/metrics.jsonl        one JSON object per epoch (keys in METRIC_KEYS; errors are fractions)
RUN/checkpoints/last.pt  after every epoch and when stopped by a signal
RUN/checkpoints/best.pt  the epoch with the lowest validation top-1 error
RUN/plots/curves.png     loss and error against epoch
RUN/summary.json         best and final metrics, epochs, wall time, images/s
RUN/report.html          the self-contained run report
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from alexnet.errors import UserError

METRIC_KEYS = (
    "epoch",
    "train_loss",
    "train_top1_error",
    "val_loss",
    "val_top1_error",
    "val_top5_error",
    "lr",
    "images_per_second",
    "seconds",
)
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "report.html")
RUN_DIRS = ("checkpoints", "plots", "tb")


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Create ``out`` (or reuse it when resuming); refuse to mix two runs in one directory."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory", exit_code=2)
    holds_run = out.is_dir() and any((out / f).exists() for f in RUN_FILES[:2] + ("checkpoints",))
    if holds_run and not resume:
        if not overwrite:
            raise UserError(
                f"--out {out} already holds a run; pass --resume auto to continue it, "
                "--overwrite to replace it, or choose another --out",
                exit_code=2,
            )
        for f in RUN_FILES:
            (out / f).unlink(missing_ok=True)
        for d in RUN_DIRS:
            shutil.rmtree(out / d, ignore_errors=True)
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "plots").mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"--out {out} is not writable: {e.strerror or e}", exit_code=2) from None


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_metrics(out: Path) -> list[dict]:
    p = out / "metrics.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def write_metrics(out: Path, records: list[dict]) -> None:
    """Rewrite metrics.jsonl (a resumed run drops records past its checkpoint)."""
    tmp = out / f".metrics.jsonl.tmp-{os.getpid()}"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, out / "metrics.jsonl")


def summarize_run(records: list[dict], wall_seconds: float) -> dict:
    """summary.json: best (lowest val top-1) and final epoch, epochs, wall time, images/s."""

    def pick(r):
        return {
            "epoch": r["epoch"],
            "val_top1_error": r["val_top1_error"],
            "val_top5_error": r["val_top5_error"],
        }

    valid = [r for r in records if not math.isnan(r["val_top1_error"])]
    best = min(valid, key=lambda r: (r["val_top1_error"], r["epoch"])) if valid else None
    ips = [r["images_per_second"] for r in records if r.get("images_per_second")]
    return {
        "best": pick(best) if best else None,
        "final": pick(records[-1]) if records else None,
        "epochs": records[-1]["epoch"] if records else 0,
        "wall_seconds": round(wall_seconds, 2),
        "images_per_second": round(sum(ips) / len(ips), 2) if ips else 0.0,
    }


def format_table(records: list[dict]) -> str:
    """The table printed at the end of a run."""
    head = (
        f"{'epoch':>5} {'train loss':>10} {'train err':>9} {'val loss':>9} "
        f"{'top-1 err':>9} {'top-5 err':>9} {'lr':>9} {'img/s':>8} {'sec':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(
            f"{r['epoch']:>5} {r['train_loss']:>10.4f} {r['train_top1_error']:>9.2%} "
            f"{r['val_loss']:>9.4f} {r['val_top1_error']:>9.2%} {r['val_top5_error']:>9.2%} "
            f"{r['lr']:>9.2e} {r['images_per_second']:>8.1f} {r['seconds']:>7.1f}"
        )
    return "\n".join(lines)
