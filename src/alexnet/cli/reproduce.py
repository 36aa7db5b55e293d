"""Reproduce the paper's findings on small hardware.

relu-vs-tanh: Figure 1, a four-layer convolutional network trained on CIFAR-10 with ReLUs
and with tanh units until 25% training error; writes figure1.png and result.json and
prints the speed-up factor (the paper reports six).
cifar10: the paper's method (--preset paper) trained on CIFAR-10's photos upscaled to 227,
tested with the centre crop, 10 crops and a 2-model average; writes result.json/.md.
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
    f.add_argument("--seed", type=int, default=C.seed)
    _method_parser(sub)
    _regime_parser(sub)
    f.add_argument(
        "--threads",
        type=int,
        default=C.threads,
        help="torch threads (0: one per core, or 1 on a busy machine)",
    )


def _method_parser(sub) -> None:
    from alexnet.reproduce.method import MethodConfig as M

    m = sub.add_parser(
        "cifar10",
        help="the paper's method on CIFAR-10 photos: centre crop, 10 crops, 2 models averaged",
        description=__doc__,
    )
    m.add_argument(
        "--data", required=True, metavar="CIFAR10", help="cifar10-jpeg.tar.gz or its folder"
    )
    m.add_argument(
        "--out", required=True, metavar="DIR", help="writes result.json, result.md, runs"
    )
    for name in ("train_per_class", "test_per_class", "epochs", "models", "seed"):
        default = getattr(M, name)
        m.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=default, help=f"({default})"
        )
    m.add_argument("--init", choices=("paper", "caffe"), default=M.init, help="(paper)")
    m.add_argument("--workers", type=int, default=None, help="loader processes (one per core)")


def _regime_parser(sub) -> None:
    r = sub.add_parser(
        "lrn-regime",
        help="alpha * sum(a^2) against k at initialisation, pixel and standardised inputs",
        description=__doc__,
    )
    r.add_argument("--data", required=True, help="any --data source of alexnet train")
    r.add_argument("--images", type=int, default=256, help="training images measured (256)")
    r.add_argument("--init", choices=("paper", "caffe", "kaiming"), default="paper")
    r.add_argument("--out", metavar="JSON", help="also write the figures as JSON")


def _run_method(args: argparse.Namespace) -> int:
    from alexnet.reproduce.method import MethodConfig, run_method

    cfg = MethodConfig(
        data=args.data,
        out=args.out,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        epochs=args.epochs,
        models=args.models,
        init=args.init,
        seed=args.seed,
        workers=args.workers,
    )
    run_method(cfg)
    return 0


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
