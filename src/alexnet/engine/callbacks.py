"""How the training loop reports: ``Callback`` and the callbacks that need no figures.

``alexnet.engine.train.Trainer`` calls every callback at the points below; the loop itself
writes only what a resume needs (checkpoints, ``metrics.jsonl``, ``summary.json``)
and its log lines. Progress bars and TensorBoard are here; the curves plot and the run
report are callbacks of ``alexnet.outputs.viz`` and ``alexnet.outputs.report``
(``alexnet.outputs.runner`` assembles the standard set). Callbacks run on every rank;
those that write files check ``trainer.dist.is_main``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class Trainer(Protocol):
    """What a callback may read of ``alexnet.engine.train.Trainer`` (declared here so
    that the loop imports its callbacks and not the other way round)."""

    cfg: Any  # alexnet.engine.config.TrainConfig
    dist: Any  # alexnet.engine.distributed.DistInfo
    data: Any  # the run's loaders (alexnet.engine.setup)
    schedule: Any  # alexnet.engine.schedule
    records: list[dict[str, Any]]  # metrics.jsonl so far
    step: int  # optimizer steps taken
    epoch: int  # epochs completed
    batch_in_epoch: int

    def images_per_second(self) -> float: ...


__all__ = ["Callback", "ProgressBar", "StepLines", "TensorBoard"]


class Callback:
    """Override what you need; every method is a no-op here."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step (after a resume restored its state)."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before the first step of an epoch (or of the rest of one, after a resume)."""

    def on_step_start(self, trainer: Trainer) -> None:
        """Before optimizer step ``trainer.step + 1``."""

    def on_step_end(self, trainer: Trainer, loss: torch.Tensor, lr: float) -> None:
        """After optimizer step ``trainer.step`` is queued; ``loss`` of its batch (a 0-d
        tensor on the device: ``float(loss)`` waits for the step to finish, so read it only
        when it is shown), ``lr`` it used."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After validation, with the epoch's metrics (``rundir.METRIC_KEYS``), once the
        checkpoints and metrics.jsonl are written."""

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """After the last epoch, with ``summary.json``'s content."""


class ProgressBar(Callback):
    """A tqdm bar per epoch on rank 0 where stderr is a terminal: loss, learning rate,
    images/s (elsewhere ``StepLines``)."""

    def __init__(self) -> None:
        self.bar = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        if not trainer.dist.is_main:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=trainer.data.steps_per_epoch,
            initial=trainer.batch_in_epoch,
            desc=f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            unit="batch",
        )

    def on_step_end(self, trainer: Trainer, loss: torch.Tensor, lr: float) -> None:
        if self.bar is None:
            return
        # the loss is read (a wait for the device) only when tqdm has just redrawn (at most
        # every 0.1 s) and at the epoch's last step; it shows at the next redraw
        if self.bar.update(1) or trainer.batch_in_epoch == trainer.data.steps_per_epoch:
            rate = trainer.images_per_second()
            self.bar.set_postfix(
                loss=f"{float(loss):.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", refresh=False
            )

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.close()

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepLines(Callback):
    """Where stderr is not a terminal (a log file, a pipe): one plain line per ``every``
    optimizer steps on rank 0 instead of a bar, e.g.
    ``epoch 3 step 120/600 loss 2.31 lr 0.01 412 img/s eta 1m10s`` (eta: the epoch's rest)."""

    def __init__(self, every: int | None = None) -> None:
        self.every = every
        self._t0, self._first = 0.0, 0

    def on_epoch_start(self, trainer: Trainer) -> None:
        import time

        self._t0, self._first = time.time(), trainer.batch_in_epoch

    def on_step_end(self, trainer: Trainer, loss: torch.Tensor, lr: float) -> None:
        import time

        spe, done = trainer.data.steps_per_epoch, trainer.batch_in_epoch
        every = self.every or max(1, spe // 20)
        if not trainer.dist.is_main or (done % every and done != spe):
            return
        from alexnet.progress import format_duration

        seconds = max(time.time() - self._t0, 1e-9)
        eta = (spe - done) * seconds / max(done - self._first, 1)
        print(
            f"epoch {trainer.epoch + 1} step {done}/{spe} loss {float(loss):.4g} lr {lr:.3g} "
            f"{trainer.images_per_second():.0f} img/s eta {format_duration(eta)}",
            file=sys.stderr,
            flush=True,
        )


class TensorBoard(Callback):
    """TensorBoard event files in ``RUN/tb/``: every epoch's metrics and learning rate
    (``tensorboard --logdir runs``). Built only where the ``tensorboard`` package is
    installed (:func:`tensorboard_or_none`)."""

    def __init__(self, log_dir) -> None:
        self.log_dir, self.writer = log_dir, None

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.dist.is_main:  # opened once the run directory is prepared
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()


def tensorboard_or_none(log_dir) -> TensorBoard | None:
    """A TensorBoard callback, or None when the ``tensorboard`` package is missing."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        return None
    return TensorBoard(log_dir)
