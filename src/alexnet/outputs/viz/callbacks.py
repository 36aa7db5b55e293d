"""The training-curves figure as a training callback: ``RUN/plots/curves.png``, redrawn as
epochs end (loss and error against epoch)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alexnet.engine.callbacks import Callback

from .curves import plot_curves


class CurvesPlot(Callback):
    """Redraws ``RUN/plots/curves.png`` from the run's metrics (rank 0): after an epoch once
    the time since the last drawing ended (or since training started) is at least ``1 /
    SHARE`` times that drawing's duration (``FIRST`` before the first), and at the end of
    the run if an epoch since was not drawn.

    A drawing is 0.3-0.6 s of matplotlib on a 2-core CPU: nothing beside epochs of minutes,
    but half the time of a run whose epochs take a second (the suite's runs on 24 images:
    0.6 s). Such runs draw every ~10 s and at the end instead. A run stopped by a signal
    keeps its last drawing; the resumed run redraws."""

    SHARE = 0.05  # at most this share of the run's time goes to drawing
    FIRST = 0.5  # s, what a drawing is taken to cost before one is timed

    def __init__(self) -> None:
        self._since: float | None = None  # time.monotonic() of the last drawing's end
        self._took = self.FIRST  # its duration, s
        self._behind = False  # an epoch ended since

    def on_train_start(self, trainer) -> None:
        self._since = time.monotonic()

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        since = time.monotonic() - self._since if self._since is not None else float("inf")
        if since * self.SHARE >= self._took:
            self._draw(trainer)
        else:
            self._behind = True

    def on_train_end(self, trainer, summary: dict[str, Any]) -> None:
        if trainer.dist.is_main and self._behind:
            self._draw(trainer)

    def _draw(self, trainer) -> None:
        start = time.monotonic()
        plot_curves(trainer.records, Path(trainer.cfg.out) / "plots" / "curves.png")
        self._since = time.monotonic()
        self._took, self._behind = self._since - start, False
