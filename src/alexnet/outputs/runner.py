"""A training run with everything a user sees: ``run_training(cfg)`` is
``alexnet.engine.train.train`` with the standard callbacks (progress bars, the curves
plot, TensorBoard where installed, the run report), so the engine itself imports no
figure or report code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alexnet.engine.callbacks import Callback, ProgressBar, StepLines, tensorboard_or_none
from alexnet.engine.config import TrainConfig


def standard_callbacks(cfg: TrainConfig) -> list[Callback]:
    """Progress (unless ``quiet``): a bar on a terminal, else a line per ``log_interval``
    steps; ``plots/curves.png``, ``tb/`` event files when the
    ``tensorboard`` package is installed, and ``report.html`` at the end (unless
    ``report`` is off)."""
    from alexnet.outputs.report import ReportCallback
    from alexnet.outputs.viz.callbacks import CurvesPlot
    from alexnet.progress import is_terminal

    callbacks: list[Callback] = []
    if not cfg.quiet:
        callbacks.append(ProgressBar() if is_terminal() else StepLines(cfg.log_interval))
    callbacks.append(CurvesPlot())
    tb = tensorboard_or_none(Path(cfg.out) / "tb")
    if tb is not None:
        callbacks.append(tb)
    if cfg.report:
        callbacks.append(ReportCallback())
    return callbacks


def run_training(
    cfg: TrainConfig,
    *,
    resume: str | dict | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    allow_data_change: bool = False,
    resume_path: str | None = None,
) -> dict:
    """``alexnet train``: run ``cfg`` with the standard callbacks (plus ``callbacks``);
    returns the summary."""
    from alexnet.engine.train import train

    return train(
        cfg,
        resume=resume,
        overwrite=overwrite,
        callbacks=[*standard_callbacks(cfg), *callbacks],
        allow_data_change=allow_data_change,
        resume_path=resume_path,
    )
