"""Train a model: the paper's recipe by default, presets in src/alexnet/engine/configs/
(configs/ at the top of a checkout), every setting a flag.

Settings resolve as: the paper's defaults < --preset < --config FILE < flags.
Without --data the generated demo dataset is used (preset "demo"). The run
directory (--out, or --output) receives config.yaml, metrics.jsonl, checkpoints/last.pt
and best.pt (and best-epochNNN.pt with --keep-best), plots/curves.png, summary.json,
report.html and, with the tensorboard package installed, tb/ (TensorBoard event files).
SIGINT/SIGTERM finish the current step, write checkpoints/last.pt and exit with 130/143;
continue with --resume auto.
Under torchrun every process runs this same command. -b, -j and --output are timm's and
torchvision's names for --batch-size, --workers and --out. Every configuration error,
missing files and unusable devices included, is reported at once with exit code 2 before
anything is created (docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "train"
HELP = "train a model (the main job); see --preset and configs/"

# Settings a resumed run may change; all others come from the checkpoint. ``data``:
# the same dataset moved to another path.
RESUME_OVERRIDABLE = {
    "epochs",
    "max_steps",
    "workers",
    "device",
    "quiet",
    "log_interval",
    "eval_batches",
    "out",
    "data",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.cli.settings import add_model_options, add_settings

    g = p.add_argument_group("run control")
    g.add_argument(
        "--preset",
        metavar="NAME",
        help="settings preset: paper, caffe, owt, finetune, demo (configs/; default: demo "
        "without --data, else the paper's values)",
    )
    g.add_argument("--config", metavar="FILE", help="YAML file of settings (after the preset)")
    g.add_argument(
        "--resume",
        metavar="PATH|auto",
        help="continue from a checkpoint, or 'auto': the newest resumable checkpoint in --out "
        "(a fresh start where --out holds no run; refused, naming each checkpoint tried, "
        "where it holds a run and none can be resumed, unless --overwrite)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out (with --resume auto: when none of its "
        "checkpoints can be resumed)",
    )
    g.add_argument(
        "--allow-data-change",
        action="store_true",
        help="resume although the data changed since the checkpoint (images added, removed "
        "or replaced): the run continues on the new data and records that it did",
    )
    g.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings as YAML (config.yaml's content) and exit",
    )
    add_settings(p)
    add_model_options(p)


def _resume_config(args: argparse.Namespace, over: dict, model_kw: dict):
    """(the checkpoint's configuration with the overridable flags applied, its state, its
    path), or (None, None, None) for --resume auto in a directory that holds no run (or,
    with --overwrite, nothing resumable); a run with nothing resumable is refused
    (``resume_point``)."""
    from alexnet.engine.checkpoint import load_checkpoint
    from alexnet.engine.config import config_from_dict
    from alexnet.engine.rundir import resume_point
    from alexnet.errors import UserError
    from alexnet.models import model_info

    path = args.resume
    if path == "auto":
        if "out" not in over:
            raise UserError("--resume auto needs --out (the run directory to continue)", 2)
        path, state = resume_point(Path(over["out"]), overwrite=args.overwrite)
        if path is None:
            return None, None, None
    else:
        state = load_checkpoint(path, mmap=True)  # read once: train() gets this dict
    cfg = config_from_dict(state["config"], f"checkpoint {path}")
    kept = {**model_info(cfg.model).option_defaults, **(cfg.model_kwargs or {})}
    ignored = sorted(k for k in set(over) - RESUME_OVERRIDABLE if getattr(cfg, k, None) != over[k])
    ignored += sorted(k for k in model_kw if kept.get(k, object()) != model_kw[k])
    if ignored or args.preset or args.config:
        what = ignored + [f"--{k}" for k in ("preset", "config") if getattr(args, k)]
        print(
            f"alexnet: note: resuming keeps the checkpoint's settings; ignoring {', '.join(what)}",
            file=sys.stderr,
        )
    for k in RESUME_OVERRIDABLE & set(over):
        setattr(cfg, k, over[k])
    return cfg, state, str(path)


def _init_from_model(cfg, given: dict) -> None:
    """With --init-from and no --model given, train the file's model with its options (a
    missing file is left to ``TrainConfig.problems``)."""
    if cfg.init_from is None or "model" in given or not Path(cfg.init_from).is_file():
        return
    from alexnet.tasks.loading import read_state

    state = read_state(cfg.init_from, mmap=True)
    cfg.model = state["model_name"]
    cfg.model_kwargs = {**state.get("model_kwargs", {}), **cfg.model_kwargs}


def build_config(args: argparse.Namespace):
    """-> (TrainConfig, resume: None | "auto" | checkpoint dict, the checkpoint's path).
    Every configuration error, missing --resume, --init-from and --data included, is raised
    at once (exit 2) before anything is created; a file that is there but unreadable
    (a corrupt checkpoint) is a failure of its own (exit 1)."""
    from alexnet.cli.settings import model_options_from_args, settings_from_args
    from alexnet.engine.config import resolve_config

    over = settings_from_args(args)
    model_kw = model_options_from_args(args)
    errors = []
    if args.resume and args.resume != "auto" and not Path(args.resume).is_file():
        errors.append(f"--resume {args.resume}: no such file")  # with the flags' own below
    elif args.resume:
        cfg, state, path = _resume_config(args, over, model_kw)
        if cfg is not None:
            cfg.validate()
            return cfg, state, path
    preset = args.preset or ("demo" if args.data is None and args.config is None else None)
    if model_kw:
        over["model_kwargs"] = {**over.get("model_kwargs", {}), **model_kw}
    cfg = resolve_config(preset, args.config, over)
    _init_from_model(cfg, over)
    if "out" not in over and args.config is None and (preset is None or cfg.out == "runs/alexnet"):
        cfg.out = f"runs/{preset or cfg.model}"
    cfg.validate(errors)
    return cfg, ("auto" if args.resume else None), None


def run(args: argparse.Namespace) -> int:
    from alexnet.engine.config import config_yaml

    cfg, resume, resume_path = build_config(args)
    if args.print_config:
        sys.stdout.write(config_yaml(cfg))
        return 0
    from alexnet.outputs.runner import run_training

    run_training(
        cfg,
        resume=resume,
        overwrite=args.overwrite,
        allow_data_change=args.allow_data_change,
        resume_path=resume_path,
    )
    return 0
