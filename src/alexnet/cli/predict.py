"""Top-k classes for image files and folders (JPEG, PNG, greyscale, RGBA, ...).

A folder stands for the images under it and its sub-folders, in sorted order. An
unreadable or missing file is reported (in --json as {"image", "error"}) and the other
images are still answered; the exit code is then 1. --output FILE.csv (a header, then one
row per image: image, class_1, probability_1, ..., error), FILE.json (a list) or
FILE.jsonl (one object per line) is written batch by batch and flushed, so a stopped run
leaves the rows done so far.
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "predict"
HELP = "top-k classes with probabilities for image files and folders"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.tasks.inference import add_inference_arguments

    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint (.pt) or .safetensors")
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, or folders (their images, recursively, in sorted order)",
    )
    p.add_argument("--topk", type=int, default=5, help="classes per image (5)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write the results to FILE.csv, FILE.json or FILE.jsonl as they are done "
        "(stdout then gets a summary line)",
    )
    add_inference_arguments(p)
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (32)")


def run(args: argparse.Namespace) -> int:
    import contextlib

    from alexnet.tasks.inference import load_for_inference, weights_line
    from alexnet.tasks.predict import ResultWriter, check_output, expand_images, iter_predictions

    if args.output:
        check_output(args.output)  # before the model is loaded
    paths = expand_images(args.images)
    setup = load_for_inference(
        [args.checkpoint],
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        weights=args.weights,
    )
    note = weights_line(setup)
    if note:  # stderr: stdout stays the results (JSON with --json)
        print(note, file=sys.stderr)
    results, failed = [], 0
    writer = ResultWriter(args.output, args.topk) if args.output else None
    with writer or contextlib.nullcontext():
        for batch in iter_predictions(setup, paths, topk=args.topk, batch_size=args.batch_size):
            failed += sum("error" in r for r in batch)
            if writer is not None:
                writer.write(batch)
            elif args.json:
                results.extend(batch)
            else:
                _print_text(batch)
    if writer is not None:
        print(f"wrote {writer.rows} rows to {args.output} ({failed} with an error)")
    elif args.json:
        print(json.dumps(results, indent=2, allow_nan=False))
    if failed:
        print(f"alexnet: {failed} of {len(paths)} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _print_text(rows: list[dict]) -> None:
    for r in rows:
        print(r["image"])
        if "error" in r:
            print(f"  error: {r['error']}")
            continue
        for p in r["predictions"]:
            print(f"  {p['probability']:7.2%}  {p['class']}")
    sys.stdout.flush()
