"""Train a model: the paper's recipe by default, presets in configs/, every setting a flag.

Settings resolve as: the paper's defaults < --preset < --config FILE < flags.
Without --data the generated demo dataset is used (preset "demo"). The run
directory (--out) receives config.yaml, metrics.jsonl, checkpoints/last.pt and
best.pt, plots/curves.png, summary.json and report.html. SIGINT/SIGTERM finish
the current step, write checkpoints/last.pt and exit with 130/143; continue with
--resume auto. Under torchrun every process runs this same command.
"""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a model (the main job); see --preset and configs/"

# Settings a resumed run may change; all others come from the checkpoint.
RESUME_OVERRIDABLE = {"epochs", "max_steps", "workers", "device", "quiet", "eval_batches", "out"}


def _flag(p, name, **kw):
    p.add_argument(name, default=None, **kw)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to train")
    _flag(
        g,
        "--preset",
        metavar="NAME",
        help="settings preset: paper, owt, demo, ... "
        "(default: demo without --data, else the paper's values)",
    )
    _flag(g, "--config", metavar="FILE", help="YAML file of settings (applied after the preset)")
    _flag(
        g,
        "--data",
        metavar="DIR",
        help="ImageFolder root with train/ and val/, a packed "
        "store (alexnet prepare), or cifar10:/imagenet:/imagenette:DIR; default: demo data",
    )
    _flag(g, "--model", help="alexnet (the paper), alexnet_bn or alexnet_owt")
    _flag(g, "--init", help="weight init of alexnet/alexnet_bn: paper, caffe or kaiming")
    _flag(g, "--dropout", type=float, help="dropout on fc6/fc7 outputs (0.5)")
    _flag(g, "--input-size", type=int, help="crop side: 227 or 224")
    g = p.add_argument_group("optimisation")
    _flag(g, "--epochs", type=int)
    _flag(g, "--batch-size", type=int, help="images per step per process (128)")
    _flag(g, "--lr", type=float, help="learning rate (0.01)")
    _flag(g, "--optimizer", help="sgd (the paper) or adamw")
    _flag(g, "--momentum", type=float)
    _flag(g, "--weight-decay", type=float)
    _flag(g, "--schedule", help="plateau (the paper), step, cosine or constant")
    _flag(g, "--warmup-epochs", type=float)
    _flag(g, "--label-smoothing", type=float)
    _flag(g, "--ema-decay", type=float, help="EMA of weights, e.g. 0.999 (0 = off)")
    _flag(g, "--grad-clip", type=float, help="max gradient norm (0 = off)")
    _flag(g, "--lighting", type=float, help="PCA lighting alphastd (0.1; 0 = off)")
    _flag(g, "--color-jitter", type=float, help="ColorJitter strength (0 = off)")
    _flag(
        g,
        "--normalize",
        help="per-channel mean/std or the paper's per-pixel mean image",
    )
    g = p.add_argument_group("run")
    _flag(g, "--out", metavar="DIR", help="run directory (default runs/<preset or model>)")
    _flag(
        g,
        "--resume",
        metavar="PATH|auto",
        help="continue from a checkpoint, or 'auto': the newest complete checkpoint in --out",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _flag(g, "--seed", type=int)
    g.add_argument(
        "--deterministic",
        action="store_const",
        const=True,
        default=None,
        help="use deterministic algorithms only",
    )
    _flag(g, "--max-steps", type=int, help="stop after N optimizer steps (smoke runs)")
    _flag(g, "--eval-batches", type=int, help="validate on at most N batches")
    g.add_argument(
        "--skip-bad",
        action="store_const",
        const=True,
        default=None,
        help="skip unreadable images (counted) instead of failing",
    )
    g.add_argument(
        "--quiet",
        action="store_const",
        const=True,
        default=None,
        help="no progress bars; a line per epoch",
    )
    g = p.add_argument_group("hardware")
    _flag(g, "--device", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    _flag(g, "--workers", type=int, help="data loading processes (2)")
    _flag(g, "--amp", help="mixed precision: auto, off, bf16 or fp16")
    g.add_argument(
        "--channels-last",
        nargs="?",
        const="on",
        default=None,
        choices=["auto", "on", "off"],
        help="channels_last memory format",
    )
    g.add_argument("--no-channels-last", dest="channels_last", action="store_const", const="off")
    g.add_argument(
        "--compile", action="store_const", const=True, default=None, help="torch.compile the model"
    )
    _flag(
        g,
        "--model-parallel",
        metavar="DEV_A,DEV_B",
        help="the paper's split: tower A on DEV_A, tower B on DEV_B (§3.2)",
    )


def overrides_from_args(args: argparse.Namespace) -> dict:
    keys = [
        "data",
        "model",
        "epochs",
        "batch_size",
        "lr",
        "optimizer",
        "momentum",
        "weight_decay",
        "schedule",
        "warmup_epochs",
        "label_smoothing",
        "ema_decay",
        "grad_clip",
        "lighting",
        "color_jitter",
        "normalize",
        "out",
        "seed",
        "deterministic",
        "max_steps",
        "eval_batches",
        "skip_bad",
        "quiet",
        "device",
        "workers",
        "amp",
        "channels_last",
        "compile",
        "model_parallel",
        "input_size",
    ]
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def build_config(args: argparse.Namespace):
    from alexnet.checkpoint import find_latest_checkpoint, load_checkpoint
    from alexnet.config import TrainConfig, resolve_config
    from alexnet.errors import UserError

    over = overrides_from_args(args)
    model_kw = {k: getattr(args, k) for k in ("init", "dropout") if getattr(args, k) is not None}
    if args.resume:
        out = over.get("out")
        path = args.resume
        if path == "auto":
            if out is None:
                raise UserError(
                    "--resume auto needs --out (the run directory to continue)", exit_code=2
                )
            found = find_latest_checkpoint(out)
            if found is not None:
                path = str(found)
        if path != "auto":
            saved = load_checkpoint(path)["config"]
            cfg = TrainConfig(**saved)
            ignored = sorted(set(over) - RESUME_OVERRIDABLE)
            if ignored or model_kw:
                print(
                    f"alexnet: note: resuming keeps the checkpoint's settings; ignoring "
                    f"{', '.join(ignored + sorted(model_kw))}"
                )
            for k in RESUME_OVERRIDABLE & set(over):
                setattr(cfg, k, over[k])
            return cfg, path
    preset = args.preset or ("demo" if args.data is None and args.config is None else None)
    cfg = resolve_config(preset, args.config, over)
    if model_kw:
        cfg.model_kwargs = {**cfg.model_kwargs, **model_kw}
    if "out" not in over and args.config is None and (preset is None or cfg.out == "runs/alexnet"):
        cfg.out = f"runs/{preset or cfg.model}"
    return cfg, args.resume


def run(args: argparse.Namespace) -> int:
    from alexnet.train import train

    cfg, resume = build_config(args)
    train(cfg, resume=resume, overwrite=args.overwrite)
    return 0
