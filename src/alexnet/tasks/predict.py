"""Top-k class predictions for image files; a bad file is reported and the rest still answered."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alexnet.data.classes import display_names
from alexnet.engine.validate import predict_probs
from alexnet.errors import UserError
from alexnet.tasks.inference import InferenceSetup, eval_transform_for

_NOT_FINITE = "the model's output for this image is NaN or infinite (its weights are too large)"


def predict_files(
    setup: InferenceSetup, paths: Sequence[str], topk: int = 5, batch_size: int = 32
) -> list[dict]:
    """One dict per path, in order: ``{"image", "predictions": [{"class", "probability"}]}``
    or ``{"image", "error"}``."""
    from alexnet.data import load_image

    if topk < 1:
        raise UserError(f"--topk must be >= 1, got {topk}", exit_code=2)
    tf = eval_transform_for(setup)
    names = display_names(setup.classes)
    k = min(topk, len(names))
    results: list[dict | None] = [None] * len(paths)
    batch: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if not batch:
            return
        x = torch.stack([t for _, t in batch])
        probs = predict_probs(setup.modules, x, setup.device, setup.amp, setup.channels_last)
        finite = torch.isfinite(probs).all(dim=1).tolist()
        top = probs.topk(k, dim=1)
        rows = zip(batch, top.values.tolist(), top.indices.tolist(), finite, strict=True)
        for (i, _), p, idx, ok in rows:
            if not ok:  # finite weights can still overflow: never print NaN as a probability
                results[i] = {"image": str(paths[i]), "error": _NOT_FINITE}
                continue
            results[i] = {
                "image": str(paths[i]),
                "predictions": [
                    {"class": names[j], "probability": round(float(q), 6)}
                    for q, j in zip(p, idx, strict=True)
                ],
            }
        batch.clear()

    for i, path in enumerate(paths):
        try:
            batch.append((i, tf(load_image(path))))
        except UserError as e:
            results[i] = {"image": str(path), "error": str(e)}
        if len(batch) >= batch_size:
            flush()
    flush()
    return results  # type: ignore[return-value]
