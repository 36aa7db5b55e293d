"""Print every layer of a model (output shape, parameters, multiply-accumulates) and totals."""

from __future__ import annotations

import argparse

NAME = "summary"
HELP = "layer table: output shapes, parameters, MACs, neurons"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.models import DEFAULT_MODEL

    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name (see --list); default {DEFAULT_MODEL}"
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="input side in pixels: 227 (default for alexnet) or 224",
    )
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (1000)")
    p.add_argument("--list", action="store_true", help="list the model names and exit")


def run(args: argparse.Namespace) -> int:
    import torch

    from alexnet.errors import UserError
    from alexnet.models import create_model, input_size_for, list_models, model_info
    from alexnet.outputs.summary import format_summary, summarize

    if args.list:
        for name in list_models():
            info = model_info(name)
            sizes = "/".join(map(str, info.input_sizes)) or f">={info.min_input_size}"
            print(f"{name:<12} {sizes:<8} {info.summary}")
        return 0
    try:
        info = model_info(args.model)
        kwargs = {}
        if args.input_size is not None and "input_size" in info.options:
            kwargs["input_size"] = args.input_size
        with torch.device("meta"):  # shapes and counts only: no memory, no initialisation
            model = create_model(args.model, num_classes=args.num_classes, **kwargs)
    except ValueError as e:
        raise UserError(str(e)) from None
    size = args.input_size or input_size_for(args.model, kwargs)
    if not info.accepts_input_size(size):
        raise UserError(f"--input-size {size}: {args.model} takes {info.input_sizes}")
    print(format_summary(summarize(model, size), title=f"model: {args.model}"))
    return 0
