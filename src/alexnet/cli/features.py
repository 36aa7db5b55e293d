"""Write one layer's activations for every image of a split to an .npz: pool5 (256x6x6 =
9216, flattened), fc6 or fc7 (4096, after ReLU, before dropout; fc7 is the vector the
paper compares in §6.1), computed with the model's own preprocessing (centre crop).

FILE is a checkpoint (trained, or from import-caffe / import-torchvision) or .safetensors
weights. The .npz holds features (N, D) float32, labels (N,), paths (N,) relative to the
split folder (item indices for data without files), classes (the data's) and layer:

    z = numpy.load("fc7.npz"); X, y = z["features"], z["labels"]
"""

from __future__ import annotations

import argparse

NAME = "features"
HELP = "write pool5/fc6/fc7 features of every image of a split to an .npz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.tasks.features import LAYERS
    from alexnet.tasks.inference import add_weights_argument

    p.add_argument("file", metavar="FILE", help="weights: checkpoint (.pt) or .safetensors")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset (as for train --data)")
    p.add_argument("--layer", required=True, choices=LAYERS, help="which activations")
    p.add_argument("--split", default="val", help="split to run (val)")
    p.add_argument("--out", required=True, metavar="FEATS.npz", help=".npz file to write")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--amp", default="off", choices=["auto", "off", "bf16", "fp16"], help="(off: float32)"
    )
    add_weights_argument(p)


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
    )
    if res.weights:
        print(f"weights: {res.weights}")
    print(f"wrote {res.path}: {res.images} images x {res.dim} ({res.layer}) from {args.file}")
    return 0
