"""Pack an ImageFolder into a packed store, or compute its training-set statistics.

    alexnet prepare SRC DST [--size 256] [--workers N] [--skip-bad] [--no-stats] [--force]
    alexnet prepare --stats SRC

SRC is an ImageFolder root: SRC/train/<class>/<images> and SRC/val/<class>/<images>
(SRC/test/ is taken for val when there is no val/), or a .tar/.tar.gz of one.
With DST: every image of both splits is decoded once, rescaled as in the paper
(shorter side to SIZE, central SIZExSIZE crop) and written as raw uint8 to DST,
with labels, class names and the training split's statistics; `alexnet train --data DST`
then reads it without decoding JPEGs. DST appears only when complete; a second
prepare into the same DST meanwhile fails at once, naming the first. --force replaces
only a packed store or an empty folder, and not while a run is reading the store.
A full disk stops it in one line with nothing left behind.
With --stats and no DST: compute the statistics of SRC's training split (mean,
std, mean image, PCA of the RGB pixels for lighting) of the images resized as
--resize-mode says and cache them as SRC/stats.json (stats-warp.json for warp; in the
cache folder when SRC is read-only); training with that resize then uses them.
"""

from __future__ import annotations

import argparse

NAME = "prepare"
HELP = "pack an ImageFolder into a fast uint8 store, or --stats: compute its statistics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's lines
    p.add_argument("src", metavar="SRC", help="ImageFolder root (train/ and val/) or its tarball")
    p.add_argument("dst", metavar="DST", nargs="?", help="store folder to create")
    p.add_argument("--size", type=int, default=256, help="side of the stored images (256)")
    p.add_argument(
        "--resize-mode",
        choices=("square", "warp"),
        default="square",
        help="square: shorter side to SIZE, the central square (§2); warp: the whole image "
        "squeezed to SIZE x SIZE (Caffe, for --preset caffe)",
    )
    p.add_argument("--workers", type=int, default=1, help="decoding processes (1)")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out corrupt or unreadable images and list them (default: stop at the first)",
    )
    p.add_argument(
        "--stats",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compute the training-set statistics (default with DST: yes; without DST: "
        "--stats computes and caches them for SRC)",
    )
    p.add_argument(
        "--stats-images",
        type=int,
        default=10_000,
        help="images sampled for the statistics (10000)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace DST when it is a packed store or an empty folder (never SRC, a folder "
        "around or inside it, a file or another folder; nor a store a run is reading)",
    )


def run(args: argparse.Namespace) -> int:

    from alexnet.errors import UserError

    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.dst is None:
        if not args.stats:
            raise UserError("give DST to pack a store, or --stats to compute statistics only")
        return _stats_only(args)

    from alexnet.data import prepare_store
    from alexnet.progress import progress as progress_bar

    bars = {}

    def progress(split: str, done: int, total: int) -> None:
        if split not in bars:
            bars[split] = progress_bar(total=total, desc=f"packing {split}", unit="img")
        bar = bars[split]
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    report = prepare_store(
        args.src,
        args.dst,
        size=args.size,
        resize_mode=args.resize_mode,
        workers=args.workers,
        skip_bad=args.skip_bad,
        stats=args.stats is not False,
        force=args.force,
        stats_images=args.stats_images,
        progress=progress,
    )
    print(report.summary())
    if report.stats is not None:
        print(_format_stats(report.stats))
    return 0


def _stats_only(args: argparse.Namespace) -> int:
    from alexnet.data import compute_stats
    from alexnet.data.stats import stats_dir
    from alexnet.errors import UserError

    stats = compute_stats(
        args.src, max_images=args.stats_images, size=args.size, resize_mode=args.resize_mode
    )
    for d in stats_dir(args.src):
        try:
            path = stats.save(d)
        except OSError:
            continue
        print(f"statistics of {stats.num_images} images written to {path}")
        print(_format_stats(stats))
        return 0
    raise UserError(f"cannot write the statistics anywhere: {stats_dir(args.src)}")


def _format_stats(stats) -> str:
    import numpy as np

    def f(v) -> str:
        return np.array2string(np.asarray(v), precision=4, separator=", ", suppress_small=True)

    return (
        f"  mean {f(stats.mean)}  std {f(stats.std)}  PCA eigval {f(stats.eigval)}\n"
        f"  PCA eigvec (columns) {f(stats.eigvec)}"
    )
