"""Learning-rate schedules as one small resumable object.

lr(step) = base_lr x warm-up factor x schedule factor, where the schedule is
  plateau  - x lr_factor each time the validation top-1 error has not improved
             for more than ``patience`` epochs (the flat epochs tolerated, as torch's
             ReduceLROnPlateau counts them), at most ``max_decays`` times (§5: "divide
             the learning rate by 10 when the validation error rate stopped
             improving ... reduced three times prior to termination");
  step     - x lr_factor every ``step_epochs`` epochs, or every ``step_iterations``
             optimizer steps when that is set (Caffe's ``stepsize``);
  cosine   - half a cosine from 1 to 0 over the run;
  constant - 1.
The trainer sets the lr of every parameter group before each step, so the
state here (plus the step count) is all a resumed run needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class LRSchedule:
    base_lr: float
    kind: str = "plateau"
    total_steps: int = 1
    steps_per_epoch: int = 1
    warmup_steps: int = 0
    lr_factor: float = 0.1
    patience: int = 2
    max_decays: int = 3
    step_epochs: int = 30
    step_iterations: int | None = None
    min_improvement: float = 0.0
    # plateau state
    scale: float = 1.0
    decays: int = 0
    best: float = math.inf
    bad_epochs: int = 0

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        f = 1.0
        if self.warmup_steps and step < self.warmup_steps:
            f = (step + 1) / self.warmup_steps
        if self.kind == "plateau":
            f *= self.scale
        elif self.kind == "step" and self.step_iterations:
            f *= self.lr_factor ** (step // self.step_iterations)
        elif self.kind == "step":
            f *= self.lr_factor ** ((step // max(1, self.steps_per_epoch)) // self.step_epochs)
        elif self.kind == "cosine":
            t = min(
                1.0, max(0, step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            )
            f *= 0.5 * (1 + math.cos(math.pi * t))
        return self.base_lr * f

    def end_epoch(self, val_error: float) -> bool:
        """Record an epoch's validation top-1 error; True when the lr was just divided."""
        if self.kind != "plateau":
            return False
        if val_error < self.best - self.min_improvement:
            self.best, self.bad_epochs = val_error, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.patience and self.decays < self.max_decays:
            self.scale *= self.lr_factor
            self.decays += 1
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():  # keys added since a checkpoint was written keep theirs
            setattr(self, k, v)
