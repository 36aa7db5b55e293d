"""Top-k classes for image files (JPEG, PNG, greyscale, RGBA, ...).

An unreadable or missing file is reported (in --json as {"image", "error"})
and the other images are still answered; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "predict"
HELP = "top-k classes with probabilities for image files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.tasks.inference import add_weights_argument

    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint (.pt) or .safetensors")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "off", "bf16", "fp16"],
        help="auto: float32 for a run trained in float32 (--preset paper, caffe), else bf16 "
        "where the device has it natively",
    )
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--batch-size", type=int, default=32)
    add_weights_argument(p)


def run(args: argparse.Namespace) -> int:
    from alexnet.tasks.inference import load_for_inference, weights_line
    from alexnet.tasks.predict import predict_files

    setup = load_for_inference(
        [args.checkpoint],
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        weights=args.weights,
    )
    results = predict_files(setup, args.images, topk=args.topk, batch_size=args.batch_size)
    failed = sum("error" in r for r in results)
    note = weights_line(setup)
    if note:  # stderr: stdout stays the results (JSON with --json)
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False))
    else:
        for r in results:
            print(r["image"])
            if "error" in r:
                print(f"  error: {r['error']}")
                continue
            for p in r["predictions"]:
                print(f"  {p['probability']:7.2%}  {p['class']}")
    if failed:
        print(f"alexnet: {failed} of {len(results)} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0
