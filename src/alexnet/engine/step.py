"""One optimizer step and the signals that stop a run: what the training loop and the
benchmarks share (``alexnet.engine.train.Trainer``, ``alexnet.outputs.bench``)."""

from __future__ import annotations

import signal

import torch
from torch import nn
from torch.nn import functional as F

from alexnet.errors import UserError
from alexnet.runtime import autocast

__all__ = ["StopRequest", "TrainingDiverged", "set_learning_rate", "train_step"]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class StopRequest:
    """SIGINT/SIGTERM: the first finishes the current step and checkpoints; a second
    SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old = {}

    def __enter__(self) -> StopRequest:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    device: torch.device,
    amp: str,
    label_smoothing: float = 0.0,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch already on its devices: forward under autocast,
    cross-entropy, backward, [gradient clipping], step. -> (loss, logits), detached, on
    the device.

    Nothing here waits for the device (on a GPU the host queues the next batch while this
    one runs), so nothing here reads the loss: a NaN or infinite loss is the caller's to
    find (``Trainer`` reads its losses every ``READ_EVERY`` steps and before any save).
    """
    with autocast(device, amp):
        logits = model(images)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach()


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's lr: ``lr`` times its ``lr_mult`` (biases, pretrained layers)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
