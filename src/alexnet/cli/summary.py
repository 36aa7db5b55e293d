"""Print every layer of a model (output shape, parameters, multiply-accumulates) and totals."""

from __future__ import annotations

import argparse

NAME = "summary"
HELP = "layer table: output shapes, parameters, MACs, neurons"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="alexnet", help="model name (see --list); default alexnet")
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="input side in pixels: 227 (default for alexnet) or 224",
    )
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (1000)")
    p.add_argument("--list", action="store_true", help="list the model names and exit")


def run(args: argparse.Namespace) -> int:
    from alexnet.errors import UserError
    from alexnet.models import create_model, list_models
    from alexnet.summary import format_summary, summarize

    if args.list:
        print("\n".join(list_models()))
        return 0
    kwargs = {}
    if args.input_size is not None and args.model != "alexnet_owt":
        kwargs["input_size"] = args.input_size
    try:
        model = create_model(args.model, num_classes=args.num_classes, **kwargs)
    except ValueError as e:
        raise UserError(str(e)) from None
    size = args.input_size or getattr(getattr(model, "config", None), "input_size", 224)
    print(format_summary(summarize(model, size), title=f"model: {args.model}"))
    return 0
