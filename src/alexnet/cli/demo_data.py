"""Generate the demo dataset: ten classes of textures (hstripes, vstripes, diagonal,
checker, diamonds, grid, dots, rings, blotches, speckle) as JPEG files in ImageFolder
layout, DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg.

Colours, period, phase, orientation jitter, shading and noise vary at random; only the
texture tells the class. The same options always give the same files, and a DIR
that already holds them is left as it is. `alexnet train` without --data uses it.
"""

from __future__ import annotations

import argparse

NAME = "demo-data"
HELP = "generate the textures demo dataset (ImageFolder of JPEGs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's lines
    p.add_argument("dir", metavar="DIR", help="output folder (created; must be empty or demo data)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (0)")
    p.add_argument("--train-per-class", type=int, default=200, help="training images per class")
    p.add_argument("--val-per-class", type=int, default=50, help="validation images per class")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes, 2..10 (10)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (256)")


def run(args: argparse.Namespace) -> int:
    import time

    from alexnet.data import make_demo_dataset
    from alexnet.data.images import display_path

    t0 = time.perf_counter()
    root = make_demo_dataset(
        args.dir,
        seed=args.seed,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        num_classes=args.num_classes,
        size=args.size,
    )
    n_train, n_val = args.num_classes * args.train_per_class, args.num_classes * args.val_per_class
    print(
        f"demo data in {display_path(root)}: {args.num_classes} classes, {n_train} train + "
        f"{n_val} val images, {args.size}x{args.size} ({time.perf_counter() - t0:.1f} s)"
    )
    return 0
