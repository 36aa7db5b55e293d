"""Write a run directory's self-contained report.html: configuration, curves, final
metrics, conv1 kernels, sample predictions and a confusion matrix (<= 100 classes).

Every image is embedded, so the file opens offline and can be mailed or archived
on its own. ``alexnet train`` writes it at the end of every run; this command
(re)writes it, e.g. for a run that was stopped. Into a run that is still training it
waits for the training to end (which writes its own report first), and a report made
from older run files never replaces a newer one.
"""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write RUN_DIR/report.html: config, curves, metrics, kernels, predictions, confusion"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by alexnet train")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    p.add_argument(
        "--max-images",
        type=int,
        default=500,
        help="validation images for the confusion matrix (500; evenly spaced)",
    )
    p.add_argument("--samples", type=int, default=8, help="images in sample predictions (8)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alexnet.errors import UserError
    from alexnet.outputs.report import build_report, holding_run_of, save_report

    if args.max_images < 1 or args.samples < 1:
        raise UserError("--max-images and --samples must be >= 1", exit_code=2)
    if not Path(args.run_dir).is_dir():
        raise UserError(f"run directory {args.run_dir} does not exist")
    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    with holding_run_of(out, "report"):  # waits for a training into it to end
        report = build_report(
            args.run_dir, device=args.device, max_images=args.max_images, samples=args.samples
        )
        save_report(report, out)
    for note in report.skipped:
        print(f"skipped {note}")
    if report.kept_newer:
        print(f"kept {out}: it was made from newer run files than this report")
    else:
        print(f"wrote {out}")
    return 0
