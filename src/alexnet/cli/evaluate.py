"""Top-1 and top-5 error of a checkpoint, or of several averaged (the paper's ensembles, §6).

CKPT may be an alexnet checkpoint (.pt) or exported .safetensors weights (with
their .json sidecar). --ten-crop averages the softmax over the four corner and
centre crops and their mirrors (§4.1). Errors are fractions 0-1 in --json.

The data may hold any subset of the checkpoint's classes, found by name; a 1000-class
(ImageNet) checkpoint also finds folders named by WordNet id (n01440764) or by class
name (tench). The model still scores over all its outputs, and the output says how many
of its classes the data holds.
"""

from __future__ import annotations

import argparse
import json

NAME = "evaluate"
HELP = "top-1/top-5 error of checkpoints (ensembles, 10-crop)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.data.sources import SPLITS
    from alexnet.tasks.inference import add_inference_arguments

    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint(s) to average")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset (as for train --data)")
    p.add_argument(
        "--split",
        default="val",
        choices=SPLITS,
        help="split to evaluate (val; a folder's test/ stands in for a missing val/)",
    )
    p.add_argument("--ten-crop", action="store_true", help="10-crop testing (§4.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="images per forward pass (64; /10 with --ten-crop)",
    )
    p.add_argument("--workers", type=int, default=2, help="data loading processes (2)")
    add_inference_arguments(p)
    p.add_argument("--per-class", action="store_true", help="also print per-class accuracy")
    p.add_argument("--confusion", metavar="FILE", help="write the confusion matrix (JSON)")
    p.add_argument(
        "--eval-batches",
        "--max-batches",
        dest="max_batches",
        type=int,
        metavar="N",
        help="score only N batches, their images evenly spaced through the split (every class)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave unreadable images out of the count and the metric (listed)",
    )


def run(args: argparse.Namespace) -> int:
    from alexnet.engine.distributed import shutdown

    try:
        return _run(args)
    finally:  # under torchrun: leave the process group before exit (gloo's threads aborted it)
        shutdown()


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alexnet.engine.distributed import init_distributed
    from alexnet.tasks.evaluate import evaluate_checkpoints

    want_cm = bool(args.per_class or args.confusion)
    res = evaluate_checkpoints(
        args.checkpoints,
        args.data,
        split=args.split,
        ten_crop=args.ten_crop,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        confusion=want_cm,
        max_batches=args.max_batches,
        skip_bad=args.skip_bad,
        progress=not args.json,
        weights=args.weights,
    )
    if not init_distributed("cpu").is_main:
        return 0
    if args.confusion:
        Path(args.confusion).write_text(
            json.dumps(
                {"confusion": res.confusion, "per_class_accuracy": res.per_class_accuracy},
                allow_nan=False,
            )
            + "\n"
        )
    if args.json:
        out = {
            "top1_error": res.top1_error,
            "top5_error": res.top5_error,
            "loss": res.loss,
            "images": res.images,
            "skipped": len(res.skipped),
            "ten_crop": res.ten_crop,
            "weights": res.weights or None,  # null: the file holds one set of weights
            "classes_found": res.classes_found,
        }
        if args.per_class:
            out["per_class_accuracy"] = res.per_class_accuracy
        print(json.dumps(out, allow_nan=False))
        return 0
    n = len(args.checkpoints)
    what = f"ensemble of {n} checkpoints" if n > 1 else args.checkpoints[0]
    print(f"{what} on {args.data} [{args.split}], {'10-crop' if args.ten_crop else 'centre crop'}")
    print(f"  {res.classes_line}")
    if res.weights:
        print(f"  weights     {res.weights}")
    print(f"  images      {res.images}")
    if res.skipped:
        print(f"  skipped     {len(res.skipped)} unreadable (first: {res.skipped[0]})")
    print(f"  top-1 error {res.top1_error:.4f} ({res.top1_error:.2%})")
    print(f"  top-5 error {res.top5_error:.4f} ({res.top5_error:.2%})")
    print(f"  loss        {res.loss:.4f}")
    if args.per_class and res.per_class_accuracy is not None:
        from alexnet.tasks.loading import load_model

        classes = load_model(args.checkpoints[0], weights=args.weights).classes
        for c, a in zip(classes, res.per_class_accuracy, strict=True):
            if a is not None:  # a class the data holds
                print(f"  {c:<30} {a:.2%}")
    return 0
