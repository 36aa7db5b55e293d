"""Turn torchvision's AlexNet weights file (alexnet-owt-7be5be79.pth, downloaded by you from
download.pytorch.org) into an alexnet_owt checkpoint for evaluate, predict and visualize.

The file is read with weights_only=True (no code runs). The checkpoint gets
torchvision's 1000 ImageNet class names and its preprocessing (resize 256,
centre crop 224, ImageNet mean/std).
"""

from __future__ import annotations

import argparse

NAME = "import-torchvision"
HELP = "convert torchvision's alexnet-owt-*.pth weights into an alexnet_owt checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="torchvision's AlexNet state dict (.pth)")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    p.add_argument(
        "--classes",
        metavar="TXT",
        default=None,
        help="class names, one per line (default: torchvision's ImageNet categories)",
    )


def run(args: argparse.Namespace) -> int:
    from alexnet.outputs.export import import_torchvision
    from alexnet.outputs.export.caffe_weights import read_class_names

    classes = read_class_names(args.classes) if args.classes else None
    out = import_torchvision(args.file, args.out, classes=classes)
    print(f"wrote {out} (model alexnet_owt)")
    return 0
