"""Reproduce a figure of the paper. relu-vs-tanh: Figure 1, a four-layer convolutional network
trained on CIFAR-10 with ReLUs and with tanh units until 25% training error; writes
figure1.png and result.json and prints the speed-up factor (the paper reports six).
"""

from __future__ import annotations

import argparse

NAME = "reproduce"
HELP = "reproduce a figure of the paper (relu-vs-tanh: Figure 1)"


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
    f.add_argument(
        "--threads",
        type=int,
        default=C.threads,
        help="torch threads (0: one per core, or 1 on a busy machine)",
    )


def _lrs(i: int) -> str:
    from alexnet.reproduce.config import TUNED_LRS

    return ", ".join(f"{lr[i]:g} ({setup})" for setup, lr in TUNED_LRS.items())


def run(args: argparse.Namespace) -> int:
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
