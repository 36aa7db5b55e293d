"""Top-k class predictions for image files and folders; a bad file is reported and the rest
still answered, batch by batch, so a long run's rows can be written as they are done."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import torch

from alexnet.data.classes import display_names
from alexnet.engine.validate import predict_probs
from alexnet.errors import UserError
from alexnet.tasks.inference import InferenceSetup, eval_transform_for

_NOT_FINITE = "the model's output for this image is NaN or infinite (its weights are too large)"
OUTPUT_FORMATS = (".csv", ".json", ".jsonl")


def expand_images(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Each path as given, a folder replaced by the images under it (recursively, sorted
    by path); a folder without images is a UserError naming it."""
    from alexnet.data.folder import image_files

    out: list[str] = []
    empty = []
    for p in map(os.fspath, paths):
        if os.path.isdir(p):
            found = image_files(p)
            if not found:
                empty.append(p)
            out.extend(found)
        else:
            out.append(p)  # a missing or unreadable file is answered with its error
    if empty:
        raise UserError(f"no image files under {', '.join(empty)}", exit_code=2)
    return out


def iter_predictions(
    setup: InferenceSetup, paths: Sequence[str], topk: int = 5, batch_size: int = 32
) -> Iterator[list[dict]]:
    """The results of ``paths`` in order, a batch at a time: one dict per path,
    ``{"image", "predictions": [{"class", "probability"}]}`` or ``{"image", "error"}``."""
    from alexnet.data import load_image

    if topk < 1:
        raise UserError(f"--topk must be >= 1, got {topk}", exit_code=2)
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}", exit_code=2)
    tf = eval_transform_for(setup)
    names = display_names(setup.classes)
    k = min(topk, len(names))
    pending: list[dict | torch.Tensor] = []  # in order: an error row, or an image to score

    def scored() -> list[dict]:
        images = [(i, x) for i, x in enumerate(pending) if isinstance(x, torch.Tensor)]
        rows = list(pending)
        if images:
            x = torch.stack([t for _, t in images])
            probs = predict_probs(setup.modules, x, setup.device, setup.amp, setup.channels_last)
            finite = torch.isfinite(probs).all(dim=1).tolist()
            top = probs.topk(k, dim=1)
            for (i, _), p, idx, ok in zip(
                images, top.values.tolist(), top.indices.tolist(), finite, strict=True
            ):
                # finite weights can still overflow: never print NaN as a probability
                rows[i] = (
                    {"error": _NOT_FINITE}
                    if not ok
                    else {
                        "predictions": [
                            {"class": names[j], "probability": round(float(q), 6)}
                            for q, j in zip(p, idx, strict=True)
                        ]
                    }
                )
        pending.clear()
        return rows  # type: ignore[return-value]

    def batch(end: int) -> list[dict]:
        rows = scored()
        done = paths[end - len(rows) : end]
        return [{"image": str(p), **r} for p, r in zip(done, rows, strict=True)]

    images = 0
    for n, path in enumerate(paths, 1):
        try:
            pending.append(tf(load_image(path)))
            images += 1
        except UserError as e:
            pending.append({"error": str(e)})
        if images == batch_size:
            yield batch(n)
            images = 0
    if pending:
        yield batch(len(paths))


def predict_files(
    setup: InferenceSetup, paths: Sequence[str], topk: int = 5, batch_size: int = 32
) -> list[dict]:
    """All the results of :func:`iter_predictions`, one dict per path, in order."""
    return [r for batch in iter_predictions(setup, paths, topk, batch_size) for r in batch]


class ResultWriter:
    """Rows written to ``path`` as they come and flushed per batch, so a killed run
    leaves the rows so far. ``.csv``: a header, then ``image, class_1, probability_1,
    ..., class_k, probability_k, error`` (the error empty, or the classes empty);
    ``.json``: a list, one object per line; ``.jsonl``: one object per line."""

    def __init__(self, path: str | os.PathLike, topk: int) -> None:
        self.path, self.topk = Path(path), topk
        self.kind = check_output(self.path)
        self.file: IO[str] | None = None
        self.rows = 0

    def __enter__(self) -> ResultWriter:
        self.file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        if self.kind == ".csv":
            self.csv = csv.writer(self.file)
            ranks = range(1, self.topk + 1)
            self.csv.writerow(
                ["image", *[f"{c}_{r}" for r in ranks for c in ("class", "probability")], "error"]
            )
        elif self.kind == ".json":
            self.file.write("[")
        self.file.flush()
        return self

    def write(self, rows: list[dict]) -> None:
        assert self.file is not None
        for r in rows:
            if self.kind == ".csv":
                cells = [r["image"]]
                preds = r.get("predictions", [])
                for i in range(self.topk):
                    p = preds[i] if i < len(preds) else None
                    cells += [p["class"], f"{p['probability']:.6f}"] if p else ["", ""]
                self.csv.writerow([*cells, r.get("error", "")])
            else:
                sep = ("," if self.rows else "") + "\n" if self.kind == ".json" else ""
                end = "" if self.kind == ".json" else "\n"
                self.file.write(sep + json.dumps(r, allow_nan=False) + end)
            self.rows += 1
        self.file.flush()

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.file is not None
        if self.kind == ".json" and exc_type is None:
            self.file.write("\n]\n")
        self.file.close()


def check_output(path: str | os.PathLike) -> str:
    """The format of ``--output`` (.csv, .json, .jsonl) or a UserError saying why not."""
    p = Path(path)
    kind = p.suffix.lower()
    if kind not in OUTPUT_FORMATS:
        raise UserError(
            f"--output {p}: the name must end in {', '.join(OUTPUT_FORMATS)}", exit_code=2
        )
    if p.is_dir():
        raise UserError(f"--output {p} is a directory", exit_code=2)
    if not p.parent.is_dir():
        raise UserError(f"--output {p}: no such directory {p.parent}", exit_code=2)
    return kind
