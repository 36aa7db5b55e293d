"""Reproduce the paper's findings on small hardware.

relu-vs-tanh: Figure 1, a four-layer convolutional network trained on CIFAR-10 with ReLUs
and with tanh units until 25% training error; writes figure1.png and result.json and
prints the speed-up factor (the paper reports six).
cifar10: the paper's method (--preset paper) trained on CIFAR-10's photos upscaled to 227,
tested with the centre crop, 10 crops and a 2-model average; writes result.json/.md.
cifar10 --full: the paper's full schedule on one device: all 50,000 training images packed
once into a 256 store (OUT/store-256), --preset paper until the plateau after its three /10
divisions of the learning rate (or --max-epochs, 90), tested on all 10,000 test images with
the centre crop and 10 crops; error per epoch, wall time and img/s in result.json/.md:
  alexnet reproduce cifar10 --full --data ../shared/data/cifar10-jpeg.tar.gz --out runs/full
lrn-regime: how large alpha * sum(a^2) is beside k at conv1 and conv2 at initialisation,
with the paper's pixel inputs and with standardised ones.
"""

from __future__ import annotations

import argparse

NAME = "reproduce"
HELP = "reproduce the paper: relu-vs-tanh (Figure 1), cifar10 (the method), lrn-regime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.reproduce.config import Figure1Config as C

    sub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    f = sub.add_parser(
        "relu-vs-tanh",
        help="Figure 1: epochs to 25%% training error on CIFAR-10, ReLU against tanh",
        description=__doc__,
    )
    f.add_argument(
        "--data",
        required=True,
        metavar="CIFAR10",
        help="cifar10-jpeg.tar.gz, or its extracted folder (with train/<class>/*.jpg)",
    )
    f.add_argument("--out", required=True, metavar="DIR", help="writes figure1.png, result.json")
    f.add_argument(
        "--budget-minutes",
        type=float,
        default=C.budget_minutes,
        help=f"wall-clock cap for everything (default {C.budget_minutes:g}); a net still "
        "above the target when time runs out is reported as such",
    )
    f.add_argument(
        "--setup",
        choices=("paper", "pytorch"),
        default=C.setup,
        help="paper (default): centred raw RGB inputs (§2) and N(0, 0.01) weights (§5); "
        "pytorch: per-channel standardised inputs and PyTorch's default init",
    )
    f.add_argument(
        "--target-error", type=float, default=C.target_error, help=f"(default {C.target_error:g})"
    )
    f.add_argument(
        "--max-epochs", type=int, default=C.max_epochs, help=f"per net (default {C.max_epochs})"
    )
    f.add_argument("--batch-size", type=int, default=C.batch_size, help=f"(default {C.batch_size})")
    f.add_argument(
        "--lr-relu",
        type=float,
        default=C.lr_relu,
        help=f"SGD learning rate, ReLU (default {_lrs(0)})",
    )
    f.add_argument(
        "--lr-tanh",
        type=float,
        default=C.lr_tanh,
        help=f"SGD learning rate, tanh (default {_lrs(1)})",
    )
    f.add_argument(
        "--sweep",
        action="store_true",
        help="pick each net's learning rate by a short sweep first (costs budget)",
    )
    f.add_argument(
        "--train-images",
        type=int,
        default=C.train_images,
        help=f"train on N images, a fixed random subset (default {C.train_images}; 0: all 50,000)",
    )
    f.add_argument(
        "--seed",
        type=int,
        default=C.seed,
        help=f"initial weights (shared by both nets), image subset and order ({C.seed})",
    )
    _method_parser(sub)
    _regime_parser(sub)
    f.add_argument(
        "--threads",
        type=int,
        default=C.threads,
        help="torch threads (0: one per core, or 1 on a busy machine)",
    )


def _method_parser(sub) -> None:
    from alexnet.reproduce.full import FullConfig as F
    from alexnet.reproduce.method import MethodConfig as M

    m = sub.add_parser(
        "cifar10",
        help="the paper's method on CIFAR-10 photos: centre crop, 10 crops, 2 models averaged; "
        "--full: all 50,000 images and the plateau schedule's three /10 drops",
        description=__doc__,
    )
    m.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the command's line
    m.add_argument(
        "--data", required=True, metavar="CIFAR10", help="cifar10-jpeg.tar.gz or its folder"
    )
    m.add_argument(
        "--out", required=True, metavar="DIR", help="writes result.json, result.md, runs"
    )
    m.add_argument(
        "--full",
        action="store_true",
        help="the paper's full schedule: every image (unless --train/test-per-class), a "
        "packed store, /10 at each plateau three times, stop at the next plateau",
    )
    for name, full in (("train_per_class", "5000"), ("test_per_class", "1000")):
        m.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=f"({getattr(M, name)}; with --full: all {full})",
        )
    for name in ("epochs", "models"):
        m.add_argument(
            f"--{name}", type=int, default=None, help=f"({getattr(M, name)}; not with --full)"
        )
    m.add_argument("--seed", type=int, default=M.seed, help=f"({M.seed})")
    m.add_argument("--init", choices=("paper", "caffe"), default=M.init, help="(paper)")
    m.add_argument("--workers", type=int, default=None, help="loader processes (one per core)")
    m.add_argument(
        "--config",
        metavar="FILE",
        help="YAML of training settings over --preset paper (as alexnet train --config), "
        "e.g. batch_size, model_kwargs: {width: 0.125}",
    )
    full = m.add_argument_group("--full only")
    full.add_argument("--max-epochs", type=int, default=None, help=f"epoch cap ({F.max_epochs})")
    full.add_argument(
        "--patience",
        type=int,
        default=None,
        help="epochs without a lower test error that pass before each /10 (the next one "
        "divides) and before the stop after the last (the preset's: 2)",
    )
    full.add_argument(
        "--store", metavar="DIR", help="the packed store, made once, reused (OUT/store-256)"
    )


def _regime_parser(sub) -> None:
    r = sub.add_parser(
        "lrn-regime",
        help="alpha * sum(a^2) against k at initialisation, pixel and standardised inputs",
        description=__doc__,
    )
    r.add_argument("--data", required=True, help="any --data source of alexnet train")
    r.add_argument("--images", type=int, default=256, help="training images measured (256)")
    r.add_argument(
        "--init",
        choices=("paper", "caffe", "kaiming"),
        default="paper",
        help="initialisation measured (paper: §5's N(0, 0.01))",
    )
    r.add_argument("--out", metavar="JSON", help="also write the figures as JSON")


def _run_method(args: argparse.Namespace) -> int:
    from alexnet.errors import UserError

    wrong = _mode_errors(args)
    if wrong:
        raise UserError("; ".join(wrong), exit_code=2)
    if args.full:
        from alexnet.reproduce.full import FullConfig, run_full

        run_full(
            FullConfig(
                data=args.data,
                out=args.out,
                max_epochs=FullConfig.max_epochs if args.max_epochs is None else args.max_epochs,
                patience=args.patience,
                train_per_class=args.train_per_class,
                test_per_class=args.test_per_class,
                store=args.store,
                init=args.init,
                seed=args.seed,
                workers=args.workers,
                config=args.config,
            )
        )
        return 0
    from alexnet.reproduce.method import MethodConfig, run_method

    given = {
        k: getattr(args, k)
        for k in ("train_per_class", "test_per_class", "epochs", "models")
        if getattr(args, k) is not None
    }
    cfg = MethodConfig(
        data=args.data,
        out=args.out,
        init=args.init,
        seed=args.seed,
        workers=args.workers,
        config=args.config,
        **given,
    )
    run_method(cfg)
    return 0


def _mode_errors(args: argparse.Namespace) -> list[str]:
    """Options of the other mode than the one asked for, each named."""
    other = ("epochs", "models") if args.full else ("max_epochs", "patience", "store")
    return [
        f"--{name.replace('_', '-')} is "
        + ("not an option of --full (it runs to the plateau or --max-epochs)" if args.full
           else "an option of --full")
        for name in other
        if getattr(args, name) is not None
    ]  # fmt: skip


def _run_regime(args: argparse.Namespace) -> int:
    from alexnet.reproduce.lrn_regime import format_regime, lrn_regime, write_regime

    result = lrn_regime(args.data, images=args.images, init=args.init)
    print(format_regime(result))
    if args.out:
        print(f"wrote {write_regime(result, args.out)}")
    return 0


def _lrs(i: int) -> str:
    from alexnet.reproduce.config import TUNED_LRS

    return ", ".join(f"{lr[i]:g} ({setup})" for setup, lr in TUNED_LRS.items())


def run(args: argparse.Namespace) -> int:
    if args.experiment == "cifar10":
        return _run_method(args)
    if args.experiment == "lrn-regime":
        return _run_regime(args)
    from alexnet.errors import UserError
    from alexnet.reproduce.config import Figure1Config
    from alexnet.reproduce.relu_vs_tanh import run_relu_vs_tanh

    try:
        cfg = Figure1Config(
            data=args.data,
            out=args.out,
            budget_minutes=args.budget_minutes,
            setup=args.setup,
            target_error=args.target_error,
            max_epochs=args.max_epochs,
            batch_size=args.batch_size,
            lr_relu=args.lr_relu,
            lr_tanh=args.lr_tanh,
            sweep=args.sweep,
            train_images=args.train_images,
            seed=args.seed,
            threads=args.threads,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    result = run_relu_vs_tanh(cfg, log=print)
    print(result["summary"])
    return 0
