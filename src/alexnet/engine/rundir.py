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


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds a run's results: a checkpoint (partial writes ``*.tmp-*`` aside),
    metrics.jsonl, summary.json or report.html. An empty directory, or the config.yaml and
    empty folders a failed start of an older version left, holds none."""
    if not out.is_dir():
        return False
    if any((out / f).exists() for f in RUN_FILES[1:]):
        return True
    ckdir = out / "checkpoints"
    return ckdir.is_dir() and any(".tmp-" not in p.name for p in ckdir.iterdir())


def check_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """The run directory's start-up checks, writing nothing: ``out`` is a directory (or
    absent), holds no other run unless resuming or ``overwrite``, and can be written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory", exit_code=2)
    if holds_run(out) and not resume and not overwrite:
        raise UserError(
            f"--out {out} already holds a run; pass --resume auto to continue it, "
            "--overwrite to replace it, or choose another --out",
            exit_code=2,
        )
    if out.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
                pass
        except OSError as e:
            msg = f"--out {out} is not writable: {e.strerror or e}"
            raise UserError(msg, exit_code=2) from None


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Create ``out`` (or reuse it when resuming); refuse to mix two runs in one directory
    (:func:`check_run_dir`). Called once every other start-up check has passed, so a
    failed start leaves no run directory that blocks the corrected command."""
    check_run_dir(out, resume=resume, overwrite=overwrite)
    if overwrite and not resume:
        for f in RUN_FILES:
            (out / f).unlink(missing_ok=True)
        for d in RUN_DIRS:
            shutil.rmtree(out / d, ignore_errors=True)
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "plots").mkdir(exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out} is not writable: {e.strerror or e}", exit_code=2) from None


def missing_dirs(out: Path) -> list[Path]:
    """``out`` and those of its parents that do not exist yet, deepest first: what a
    failed start removes again (:func:`remove_empty_dirs`)."""
    missing = []
    p = out.absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def remove_empty_dirs(dirs: list[Path]) -> None:
    """``rmdir`` each of ``dirs`` in order, stopping at the first that is not empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


def resume_point(out: Path, *, overwrite: bool = False) -> tuple[Path | None, dict | None]:
    """``--resume auto``: (the newest checkpoint of ``out`` that can be resumed, its state),
    or (None, None) for a fresh start where ``out`` holds no run (absent, empty, or a failed
    start's leftovers) or ``overwrite`` lets the run be replaced. A directory that holds a run
    but nothing resumable is a ``UserError`` listing every checkpoint tried and why it was
    rejected; its files stay as they are.

    Candidates are ``checkpoints/*.pt`` (never ``*.tmp-*`` partial writes): ``last.pt``
    first, then the others newest first. Each is opened with its tensors memory-mapped and
    must hold optimizer state (``best.pt`` is for evaluation and has none)."""
    from alexnet.engine.checkpoint import load_checkpoint

    ckdir = out / "checkpoints"
    candidates = sorted(
        ckdir.glob("*.pt") if ckdir.is_dir() else [],
        key=lambda p: (p.name == "last.pt", p.stat().st_mtime),
        reverse=True,
    )
    rejected = []
    for p in candidates:
        try:
            state = load_checkpoint(p, mmap=True)
        except UserError as e:
            rejected.append(_reason(str(e), p))
            continue
        if state.get("optimizer") is None:
            rejected.append(f"{p.name} has no optimizer state (it is for evaluation)")
            continue
        return p, state
    if overwrite or not holds_run(out):
        return None, None
    tried = f"in {ckdir}: {'; '.join(rejected)}" if rejected else f"no {ckdir}/*.pt"
    raise UserError(
        f"--resume auto: --out {out} holds a run but no checkpoint that can be resumed ({tried}); "
        "nothing was changed: pass --overwrite to start over in it (replacing its files), "
        "--resume FILE to continue from another checkpoint, or choose another --out"
    )


def _reason(message: str, path: Path) -> str:
    """A load error naming the file by its name only (the message names its folder)."""
    return message.replace(f"checkpoint {path}", path.name).replace(str(path), path.name)


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
