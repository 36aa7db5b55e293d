"""Turn Caffe's ImageNet AlexNet (bvlc_alexnet.caffemodel from the Caffe model zoo, downloaded
by you; or CaffeNet's bvlc_reference_caffenet.caffemodel) into an alexnet checkpoint for
evaluate, predict, features and visualize. Caffe is not needed: the protobuf file is read here.

The checkpoint is the alexnet model with Caffe's constants (LRN k and alpha from the
file, alpha divided by n, the window across all 96/256 maps, inverted dropout; CaffeNet's
pool before LRN), conv1 reordered from Caffe's BGR to RGB, and Caffe's preprocessing:
the image warped to 256x256, the centre 227x227 crop, the ILSVRC-2012 mean subtracted
on the 0-255 scale (per channel, or the mean image given with --mean). A 1000-way net
gets ImageNet's class names. Nothing is written unless every check passes.
"""

from __future__ import annotations

import argparse

NAME = "import-caffe"
HELP = "convert Caffe's bvlc_alexnet.caffemodel (or CaffeNet's) into an alexnet checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="MODEL", help="Caffe weights (.caffemodel)")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    p.add_argument(
        "--mean",
        metavar="FILE",
        default=None,
        help="Caffe mean image (.binaryproto, e.g. imagenet_mean.binaryproto) to subtract "
        "instead of the per-channel mean (B 104.0, G 116.7, R 122.7)",
    )
    p.add_argument(
        "--classes",
        metavar="TXT",
        default=None,
        help="class names, one per line (default: ImageNet's 1000 names for a 1000-way net); "
        "Caffe's synset_words.txt gives the WordNet ids an ImageNet ImageFolder's folders have",
    )


def run(args: argparse.Namespace) -> int:
    from alexnet.outputs.export import import_caffe
    from alexnet.outputs.export.caffe_weights import read_class_names

    classes = read_class_names(args.classes) if args.classes else None
    out = import_caffe(args.file, args.out, mean=args.mean, classes=classes)
    print(f"wrote {out} (model alexnet, Caffe's constants and preprocessing)")
    return 0
