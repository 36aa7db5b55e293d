"""The training-curves figure as a training callback: ``RUN/plots/curves.png`` after
every epoch (loss and error against epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alexnet.engine.callbacks import Callback

from .curves import plot_curves


class CurvesPlot(Callback):
    """Redraws ``RUN/plots/curves.png`` from the run's metrics after each epoch (rank 0)."""

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if trainer.dist.is_main:
            plot_curves(trainer.records, Path(trainer.cfg.out) / "plots" / "curves.png")
