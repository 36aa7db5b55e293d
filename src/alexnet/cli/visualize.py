"""Draw the paper's figures from a checkpoint: Figure 3 with "filters" (conv1's kernels,
tower by tower, with a colour-specificity score) and Figure 4 with "predictions" (images
and their top-5 bars) and "neighbors" (images and the training images nearest in fc7
space). --data takes anything `alexnet train --data` does. Figures are drawn headless.
An --out inside a run directory (RUN/ or RUN/plots/) is written holding the run's lock,
after a training into it has ended.
"""

from __future__ import annotations

import argparse

NAME = "visualize"
HELP = "figures: conv1 kernels (Fig. 3), top-5 predictions and fc7 neighbours (Fig. 4)"


def _common(p: argparse.ArgumentParser, out: str, data: bool) -> None:
    from alexnet.data.sources import SPLITS

    p.add_argument("checkpoint", metavar="CKPT", help="a .pt checkpoint or .safetensors file")
    p.add_argument("--out", default=out, help=f"PNG file to write (default {out})")
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks for errors",
    )
    if not data:
        return
    p.add_argument("--data", required=True, metavar="DIR", help="dataset with train/ and val/")
    p.add_argument(
        "--split",
        default="val",
        choices=SPLITS,
        help="split the shown images come from (val); neighbours are always searched in train",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="draw images at random with this seed "
        "(default: evenly spaced through the split, so every class shows up)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    p.add_argument(
        "--amp", default="auto", choices=["auto", "off", "bf16", "fp16"], help="autocast precision"
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (64)")
    p.add_argument("--workers", type=int, default=0, help="data loading processes (0)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    f = sub.add_parser(
        "filters",
        help="conv1 kernels per tower and a colour-specificity score (Figure 3)",
        description="Draw conv1's kernels (96 in two towers for the paper's network) and "
        "print each tower's mean chroma fraction: 0 = grey-level kernels, ~0.67 = random "
        "weights. The paper saw tower A colour-agnostic and tower B colour-specific.",
    )
    _common(f, "filters.png", data=False)
    pr = sub.add_parser(
        "predictions",
        help="images with their top-5 bars (Figure 4, left)",
        description="Validation images, each above its five most probable labels; the "
        "correct label's bar is red when it is among them.",
    )
    _common(pr, "predictions.png", data=True)
    pr.add_argument("--count", type=int, default=8, help="validation images to show (8)")
    nb = sub.add_parser(
        "neighbors",
        help="query images and the training images nearest in fc7 (Figure 4, right)",
        description="Validation images (first column) and the training images whose fc7 "
        "vectors (4096-d, last hidden layer) are closest in Euclidean distance (§6.1).",
    )
    _common(nb, "neighbors.png", data=True)
    nb.add_argument("--queries", type=int, default=5, help="validation images to query (5)")
    nb.add_argument("--k", type=int, default=6, help="neighbours per query (6)")
    nb.add_argument(
        "--max-train",
        type=int,
        default=5000,
        help="training images searched, evenly spaced (5000; 0 = the whole split)",
    )


def _positive(args: argparse.Namespace, *names: str) -> None:
    from alexnet.errors import UserError

    bad = [f"--{n.replace('_', '-')} must be >= 1" for n in names if getattr(args, n) < 1]
    if bad:
        raise UserError("; ".join(bad), exit_code=2)


def _filters(args: argparse.Namespace) -> int:
    from alexnet.outputs.viz import conv1_towers, plot_filters
    from alexnet.outputs.viz.kernels import RANDOM_CHROMA
    from alexnet.tasks.loading import load_model

    loaded = load_model(args.checkpoint)
    towers = conv1_towers(loaded.model)
    shape = "x".join(map(str, towers[0].weights.shape[1:]))
    print(f"conv1 of {loaded.model_name}: {sum(len(t.weights) for t in towers)} kernels {shape}")
    for t in towers:
        c = t.chroma
        print(
            f"  {t.label:<34} colour specificity (mean chroma) {float(c.mean()):.3f}"
            f"  (min {float(c.min()):.3f}, max {float(c.max()):.3f})"
        )
    print(
        f"  (0 = grey-level kernels; random weights score ~{RANDOM_CHROMA:.2f}. The paper: "
        "tower A largely colour-agnostic, tower B largely colour-specific)"
    )
    plot_filters(loaded.model, args.out)
    print(f"wrote {args.out}")
    return 0


def _setup(args: argparse.Namespace):
    from alexnet.tasks.inference import load_for_inference

    _positive(args, "batch_size")
    return load_for_inference([args.checkpoint], device=args.device, amp=args.amp)


def _predictions(args: argparse.Namespace) -> int:
    from alexnet.outputs.viz.probes import sample_predictions

    _positive(args, "count")
    setup = _setup(args)
    _, rows = sample_predictions(
        setup,
        args.data,
        args.out,
        count=args.count,
        seed=args.seed,
        split=args.split,
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    hits = sum(r.hit is not None for r in rows)
    top1 = sum(r.hit == 0 for r in rows)
    print(f"{len(rows)} images: correct label top-1 in {top1}, within the top 5 in {hits}")
    print(f"wrote {args.out}")
    return 0


def _neighbors(args: argparse.Namespace) -> int:
    from alexnet.outputs.viz.probes import nearest_training_images

    _positive(args, "queries", "k")
    if args.max_train < 0:
        from alexnet.errors import UserError

        raise UserError("--max-train must be >= 0 (0 searches the whole training split)", 2)
    setup = _setup(args)
    _, res = nearest_training_images(
        setup,
        args.data,
        args.out,
        queries=args.queries,
        k=args.k,
        max_train=args.max_train,
        seed=args.seed,
        query_split=args.split,
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    note = "" if res.searched == res.train_total else " (raise --max-train, 0 for all)"
    print(
        f"{len(res.query_indices)} queries against {res.searched} of {res.train_total} "
        f"training images{note}"
    )
    print(f"wrote {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from alexnet.outputs.report import holding_run_of

    draw = {"filters": _filters, "predictions": _predictions, "neighbors": _neighbors}
    with holding_run_of(args.out, "visualize"):  # --out RUN/plots/x.png: wait for its training
        return draw[args.figure](args)
