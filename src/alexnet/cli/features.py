"""Write one layer's activations for every image of a split to an .npz: pool5 (256x6x6 =
9216, flattened), fc6 or fc7 (4096, after ReLU, before dropout; fc7 is the vector the
paper compares in §6.1), computed with the model's own preprocessing (centre crop).

FILE is a checkpoint (trained, or from import-caffe / import-torchvision) or .safetensors
weights. The .npz holds features (N, D) float32, labels (N,), paths (N,) relative to the
split folder (item indices for data without files), classes (the data's) and layer:

    z = numpy.load("fc7.npz"); X, y = z["features"], z["labels"]

--skip-bad leaves unreadable images out of every array and lists them; without it the
first one stops the run and nothing is written.
"""

from __future__ import annotations

import argparse

NAME = "features"
HELP = "write pool5/fc6/fc7 features of every image of a split to an .npz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.data.sources import SPLITS
    from alexnet.tasks.features import LAYERS
    from alexnet.tasks.inference import add_inference_arguments

    p.add_argument("file", metavar="FILE", help="weights: checkpoint (.pt) or .safetensors")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset (as for train --data)")
    p.add_argument("--layer", required=True, choices=LAYERS, help="which activations")
    p.add_argument(
        "--split",
        default="val",
        choices=SPLITS,
        help="split to run (val; a folder's test/ stands in for a missing val/)",
    )
    p.add_argument("--out", required=True, metavar="FEATS.npz", help=".npz file to write")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (64)")
    p.add_argument("--workers", type=int, default=2, help="data loading processes (2)")
    add_inference_arguments(p, amp="off", channels_last=False)
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave unreadable images out of the .npz (listed); without it the first stops the run",
    )


def run(args: argparse.Namespace) -> int:
    from alexnet.tasks.features import extract_features

    res = extract_features(
        args.file,
        args.data,
        args.layer,
        args.out,
        split=args.split,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        progress=True,
        weights_choice=args.weights,
        skip_bad=args.skip_bad,
    )
    if res.weights:
        print(f"weights: {res.weights}")
    if res.skipped:
        more = f" and {len(res.skipped) - 5} more" if len(res.skipped) > 5 else ""
        print(f"skipped {len(res.skipped)} unreadable: {'; '.join(res.skipped[:5])}{more}")
    print(f"wrote {res.path}: {res.images} images x {res.dim} ({res.layer}) from {args.file}")
    return 0
