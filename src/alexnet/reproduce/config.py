"""Options of ``alexnet reproduce relu-vs-tanh`` (light: the CLI imports it to build --help)."""

from __future__ import annotations

from dataclasses import dataclass, field

SETUPS = ("paper", "pytorch")
# (ReLU, tanh) learning rates at batch 32 on 10,000 images: the lowest training error after
# 1 and 3 epochs among 0.0005-0.05 ("paper") and 0.005-0.1 ("pytorch"); docs/results.md.
TUNED_LRS = {"paper": (0.001, 0.01), "pytorch": (0.01, 0.01)}


@dataclass
class Figure1Config:
    """Figure 1 of the paper: the same network with ReLU and with tanh units, each trained
    with plain SGD (momentum 0.9, no weight decay, no augmentation, no dropout: "No
    regularization of any kind was employed") until its training error reaches
    ``target_error``.
    """

    data: str
    """cifar10-jpeg.tar.gz or its extracted folder (``train/<class>/*.jpg``, 32x32 RGB)."""
    out: str
    """Directory for figure1.png and result.json."""
    budget_minutes: float = 28.0
    """Wall-clock cap for the whole run (data loading, sweep, both nets). The ReLU net may
    use at most a third of what is left after the sweep, tanh the rest."""
    target_error: float = 0.25
    """Training error rate that ends a net's run (the paper's 25%)."""
    max_epochs: int = 200
    """Per-net epoch cap (the budget usually ends a run first)."""
    setup: str = "paper"
    """"paper": §2's centred raw RGB inputs (0-255 minus the mean image) and §5's N(0, 0.01)
    weights; "pytorch": per-channel standardised inputs and PyTorch's default init."""
    batch_size: int = 32
    """Minibatch size: 32 makes more progress per epoch than cuda-convnet's 128 at the same
    CPU throughput, which a 30-minute budget needs."""
    lr_relu: float | None = None
    """SGD learning rate of the ReLU net; None: the setup's ``TUNED_LRS``."""
    lr_tanh: float | None = None
    """SGD learning rate of the tanh net; None: the setup's ``TUNED_LRS``."""
    momentum: float = 0.9
    sweep: bool = False
    """Choose each net's learning rate first: ``sweep_lrs`` each trained ``sweep_epochs``
    from the same start, the lowest training error over the last quarter wins."""
    sweep_lrs: tuple[float, ...] = field(default=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02))
    sweep_epochs: float = 1.0
    train_images: int = 10_000
    """Train on N images (a fixed random subset; 0: all 50,000). 10,000 lets both nets reach
    25% within the 28-minute budget on a 2-core CPU; the full set needs hours there."""
    seed: int = 0
    threads: int = 0
    """torch threads; 0: torch's default (one per core), or 1 when the load average already
    reaches the core count (``relu_vs_tanh.auto_threads``)."""

    def __post_init__(self) -> None:
        errors = []
        if not self.budget_minutes > 0:
            errors.append(f"budget_minutes must be > 0, got {self.budget_minutes}")
        if not 0.0 < self.target_error < 1.0:
            errors.append(f"target_error must be in (0, 1), got {self.target_error}")
        if self.setup not in SETUPS:
            errors.append(f"setup must be one of {', '.join(SETUPS)}, got {self.setup!r}")
        if self.max_epochs < 1:
            errors.append(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.batch_size < 1:
            errors.append(f"batch_size must be >= 1, got {self.batch_size}")
        tuned = TUNED_LRS.get(self.setup, (0.01, 0.01))
        for name, lr in (("lr_relu", tuned[0]), ("lr_tanh", tuned[1])):
            if getattr(self, name) is None:
                setattr(self, name, lr)
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.momentum < 1.0:
            errors.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.sweep_lrs or any(not lr > 0 for lr in self.sweep_lrs):
            errors.append(f"sweep_lrs must be positive numbers, got {self.sweep_lrs}")
        if not self.sweep_epochs > 0:
            errors.append(f"sweep_epochs must be > 0, got {self.sweep_epochs}")
        if self.train_images < 0:
            errors.append(f"train_images must be >= 0, got {self.train_images}")
        if self.threads < 0:
            errors.append(f"threads must be >= 0, got {self.threads}")
        if errors:
            raise ValueError("; ".join(errors))
