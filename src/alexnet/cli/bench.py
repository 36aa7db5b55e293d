"""Images/s of training steps and inference for alexnet, alexnet_owt and torchvision's alexnet.

All configurations run in one process, in alternating rounds (median per
configuration), and are printed as one table with ratios against torchvision's
alexnet in the same settings and against its eager fp32 NCHW baseline, under a
header naming the CPU (its AVX-512 / AVX512-BF16 / AMX) or the card and the matmul
peak per dtype measured in the same run; each row gives its GFLOP/s and share of it.
"""

from __future__ import annotations

import argparse
import json

from alexnet.engine.config import literal_choices, setting_types

NAME = "bench"
HELP = "throughput table: train/infer, fp32/bf16, NCHW/channels_last, eager/compile"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=64, help="images per step (64)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per round (3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept (3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before each round (1)")
    p.add_argument(
        "--models",
        default="alexnet,alexnet_owt,torchvision",
        help="comma list of registered models and torchvision (torchvision's alexnet)",
    )
    p.add_argument(
        "--modes", default="train,infer", help="comma list of train (a step), infer (a forward)"
    )
    p.add_argument("--amp", default="off,bf16", help="comma list of off, bf16, fp16")
    p.add_argument(
        "--formats", default="nchw,channels_last", help="comma list of nchw, channels_last"
    )
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument(
        "--json-out",
        metavar="FILE",
        help="also write the rows (or --store's result) as JSON to FILE; the table is printed",
    )
    p.add_argument(
        "--store",
        metavar="DATA",
        help="instead of the table: training images/s fed from DATA (a packed store, or "
        "any --data source of alexnet train) vs the same loop on batches in memory",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="--store: loader processes (default: as alexnet train chooses)",
    )
    p.add_argument(
        "--augment-on",
        choices=literal_choices(setting_types()["augment_on"]),
        default="auto",
        help="--store: where crops, mirrors, lighting run, as alexnet train's flag (auto)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from alexnet.outputs.bench import run_bench
    from alexnet.runtime import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    _check_json_out(args.json_out)  # before minutes of measuring, not after
    if args.store:
        return _store_feeding(args, device)
    rows = run_bench(
        models=_csv(args.models),
        modes=_csv(args.modes),
        amps=_csv(args.amp),
        formats=_csv(args.formats),
        compile_modes=(False, True) if args.compile else (False,),
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        device=str(device),
    )
    dicts = [r.to_dict() for r in rows]
    if args.json:
        print(json.dumps(dicts, indent=2))
    else:
        _print_table(args, device, rows)
    _write_json(args.json_out, dicts)  # after the figures are shown
    return 0


def _print_table(args: argparse.Namespace, device, rows) -> None:
    import torch

    from alexnet.machine import describe
    from alexnet.ops._loader import kernel_status
    from alexnet.outputs.bench import format_table

    print(f"alexnet bench: batch {args.batch_size}, torch {torch.__version__}")
    print(f"device: {describe(device)}")
    peaks = {r.amp: r.peak_gflops for r in rows if r.peak_gflops}
    n = 8192 if device.type == "cuda" else 2048
    named = (f"{'fp32' if a == 'off' else a} {v:,.0f} GFLOP/s" for a, v in peaks.items())
    print(f"matmul peak (torch.mm {n}x{n}, best of the rounds): {', '.join(named)}")
    if device.type == "cpu":
        print(f"LRN: {kernel_status()}")
    print(format_table(rows))
    print("GFLOP/s: img/s x 2 x MACs per image (inference) or 6 x MACs (training step);")
    print("peak: that GFLOP/s as a share of the matmul peak of the row's dtype")


def _store_feeding(args: argparse.Namespace, device) -> int:
    from alexnet.models import DEFAULT_MODEL
    from alexnet.outputs.bench import store_feeding

    models = _csv(args.models)
    r = store_feeding(
        args.store,
        model=next((m for m in models if m != "torchvision"), DEFAULT_MODEL),
        batch_size=args.batch_size,
        steps=args.steps,
        rounds=args.rounds,
        workers=args.workers,
        amp=_csv(args.amp)[0] if args.amp != "off,bf16" else "auto",
        device=str(device),
        augment_on=args.augment_on,
    )
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
    else:
        _print_feed(r)
    _write_json(args.json_out, r.to_dict())
    return 0


def _print_feed(r) -> None:
    print(
        f"training {r.model}, batch {r.batch_size}, amp {r.amp}, "
        f"channels_last {r.channels_last}, {r.workers} loader workers, "
        f"augmentation in the {'training process' if r.augment_on == 'device' else 'loader'}"
    )
    print(f"  fed from the loader: {r.store_images_per_second:8.1f} img/s   ({r.data})")
    print(f"  batches in memory:   {r.memory_images_per_second:8.1f} img/s")
    print(f"  ratio: {r.ratio:.2f} (target >= 0.95)")


def _check_json_out(path: str | None) -> None:
    """--json-out names a file in an existing folder, or a one-line error (exit 2)."""
    if path is None:
        return
    from pathlib import Path

    from alexnet.errors import UserError

    p = Path(path)
    if p.is_dir():
        raise UserError(f"--json-out {p} is a directory", exit_code=2)
    if not p.parent.is_dir():
        raise UserError(f"--json-out {p}: no such directory {p.parent}", exit_code=2)


def _write_json(path: str | None, data) -> None:
    if path:
        from pathlib import Path

        from alexnet.engine.rundir import write_json_atomic

        write_json_atomic(Path(path), data)
