"""Figure 1 of the paper (§3.1): ReLUs train several times faster than tanh units.

"A four-layer convolutional neural network with ReLUs (solid line) reaches a 25%
training error rate on CIFAR-10 six times faster than an equivalent network with
tanh neurons (dashed line). The learning rates for each network were chosen
independently to make training as fast as possible. No regularization of any kind
was employed."

The paper names no layer sizes. ``Figure1Net`` follows cuda-convnet's CIFAR-10
example (layers-18pct without its response normalisation): three 5x5
convolutions with 32, 32 and 64 maps, each followed by a 3x3 stride-2 pool (max,
then average, average), and a 10-way fully connected layer: four weight layers.
Both nets start from the same weights and see the same minibatches; only the
unit differs. Plain SGD with momentum 0.9, batch 32, no weight decay, dropout,
augmentation or normalisation layers. Inputs and initialisation are the paper's
own (§2 centred raw RGB, §5 N(0, 0.01) weights) unless ``setup="pytorch"``.
By default the nets train on a fixed 10,000-image subset so that both reach 25%
within 30 minutes on a 2-core CPU (measured: docs/results.md).

Training error of epoch e is the fraction of training images misclassified
while the net trained on them during epoch e (what cuda-convnet printed). The
epoch a net reaches the target is interpolated linearly between the last epoch
above it and the first at or below it (epoch 0: chance, 90%); the factor is
tanh's epochs over ReLU's.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from alexnet.errors import UserError

from .cifar import InMemoryImages, load_cifar_split
from .config import Figure1Config

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
CHANCE_ERROR = 0.9


class Figure1Net(nn.Module):
    """(B, 3, 32, 32) -> conv 32 5x5 -> pool -> conv 32 5x5 -> pool -> conv 64 5x5 -> pool
    -> (B, 64, 3, 3) -> fc 10. ``unit`` is "relu" or "tanh"."""

    def __init__(self, unit: str = "relu", num_classes: int = 10) -> None:
        super().__init__()
        act = ACTIVATIONS[unit]
        self.unit = unit
        # Max pooling commutes with a monotone unit, so pool1 runs before act1: the same
        # function, with the unit applied to a quarter of the values.
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2),  # (B, 32, 32, 32)
            nn.MaxPool2d(3, 2),  # (B, 32, 15, 15)
            act(),
            nn.Conv2d(32, 32, 5, padding=2),
            act(),
            nn.AvgPool2d(3, 2),  # (B, 32, 7, 7)
            nn.Conv2d(32, 64, 5, padding=2),
            act(),
            nn.AvgPool2d(3, 2),  # (B, 64, 3, 3)
        )
        self.fc = nn.Linear(64 * 3 * 3, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


@dataclass
class Run:
    """One net's training: per-epoch training error and why it stopped."""

    unit: str
    lr: float
    epoch_errors: list[float] = field(default_factory=list)
    stopped: str = ""  # "target", "budget", "max_epochs" or "diverged"
    seconds: float = 0.0
    images: int = 0

    def epochs_to(self, target: float) -> float | None:
        """Fractional epoch at which the training error reached ``target`` (None if never)."""
        prev = CHANCE_ERROR
        for e, err in enumerate(self.epoch_errors, start=1):
            if err <= target:
                return e - 1 + (prev - target) / (prev - err) if prev > err else float(e)
            prev = err
        return None


class Trainer:
    """Minibatches of the in-memory images, preprocessed per ``cfg.setup``, in a seeded order.

    "paper": §2's inputs, "the (centered) raw RGB values of the pixels" (0-255 minus the
    training set's mean image), and §5's initialisation, weights from N(0, 0.01) and
    biases 0. "pytorch": inputs scaled to zero mean and unit variance per channel, and
    PyTorch's default initialisation.
    """

    def __init__(self, data: InMemoryImages, cfg: Figure1Config) -> None:
        self.data, self.cfg = data, cfg
        x = data.images.double()
        if cfg.setup == "paper":
            self.mean = x.mean(dim=0, keepdim=True).float()  # (1, 3, 32, 32) mean image
            self.std = torch.ones(1, 3, 1, 1)
        else:
            self.mean = x.mean(dim=(0, 2, 3)).float().view(1, 3, 1, 1)
            self.std = x.std(dim=(0, 2, 3)).float().view(1, 3, 1, 1)

    def new_net(self, unit: str) -> nn.Module:
        torch.manual_seed(self.cfg.seed)  # the same initial weights for every unit and rate
        net = Figure1Net(unit, len(self.data.classes))
        if self.cfg.setup == "paper":
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)
        return net

    def batches(self, epoch: int):
        g = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch)
        n, b = len(self.data.labels), self.cfg.batch_size
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, b):
            idx = perm[i : i + b]
            x = (self.data.images[idx].float() - self.mean) / self.std
            yield x, self.data.labels[idx]

    def train(self, unit: str, lr: float, deadline: float, max_steps: int | None = None, log=None):
        """Train a fresh net until the target error, ``max_epochs``, ``deadline`` (monotonic
        seconds) or ``max_steps``; returns the Run and the per-step error counts."""
        cfg = self.cfg
        net = self.new_net(unit).train()
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum)
        run, step_errors, t0 = Run(unit, lr), [], time.monotonic()
        for epoch in range(cfg.max_epochs):
            wrong = seen = 0
            for x, y in self.batches(epoch):
                logits = net(x)
                loss = nn.functional.cross_entropy(logits, y)
                if not math.isfinite(loss.item()):
                    run.stopped = "diverged"
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                w = int((logits.argmax(1) != y).sum())
                wrong, seen = wrong + w, seen + len(y)
                step_errors.append(w / len(y))
                if time.monotonic() > deadline:
                    run.stopped = "budget"
                    break
                if max_steps is not None and len(step_errors) >= max_steps:
                    run.stopped = "steps"
                    break
            run.images += seen
            if run.stopped:
                break
            run.epoch_errors.append(wrong / seen)
            if log:
                log(f"  {unit} lr={lr:g} epoch {epoch + 1}: training error {wrong / seen:.3f}")
            if wrong / seen <= cfg.target_error:
                run.stopped = "target"
                break
        run.stopped = run.stopped or "max_epochs"
        run.seconds = time.monotonic() - t0
        return run, step_errors


def sweep(trainer: Trainer, unit: str, deadline: float, log) -> tuple[float, dict]:
    """The learning rate (of ``cfg.sweep_lrs``) with the lowest training error over the last
    quarter of ``cfg.sweep_epochs`` epochs, each from the same initial weights."""
    cfg = trainer.cfg
    steps = max(4, math.ceil(cfg.sweep_epochs * len(trainer.data.labels) / cfg.batch_size))
    scores = {}
    for lr in cfg.sweep_lrs:
        run, errs = trainer.train(unit, lr, deadline, max_steps=steps)
        tail = errs[-max(1, len(errs) // 4) :]
        scores[lr] = math.inf if run.stopped == "diverged" else sum(tail) / len(tail)
        log(f"  sweep {unit} lr={lr:g}: training error {scores[lr]:.3f} ({len(errs)} steps)")
    return min(scores, key=scores.get), {str(k): v for k, v in scores.items()}


def run_relu_vs_tanh(cfg: Figure1Config, log: Callable[[str], None] = print) -> dict:
    """Train both nets, write ``figure1.png`` and ``result.json`` into ``cfg.out``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or auto_threads())
    try:
        return _run(cfg, log)
    finally:
        torch.set_num_threads(threads)


def auto_threads() -> int:
    """torch's default (one thread per core), or 1 where the machine is already busy.

    On the shared 2-core development machine with a load average near 9, one thread
    trained this net at 110-180 images/s and two at 55-60: OpenMP threads wait for
    each other at every operation, and a descheduled one stalls the rest."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return torch.get_num_threads()
    return 1 if load >= (os.cpu_count() or 1) else torch.get_num_threads()


def _run(cfg: Figure1Config, log: Callable[[str], None]) -> dict:
    from .plot import plot_figure1

    start = time.monotonic()
    deadline = start + cfg.budget_minutes * 60
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: {e.strerror or e}") from None
    data = load_cifar_split(cfg.data, "train")
    if cfg.train_images:
        keep = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(cfg.seed))
        keep = keep[: cfg.train_images].sort().values
        data = InMemoryImages(data.images[keep], data.labels[keep], data.classes, data.source)
    log(
        f"{len(data.labels)} training images, {len(data.classes)} classes "
        f"({time.monotonic() - start:.0f} s to load)"
    )
    trainer = Trainer(data, cfg)
    lrs, sweeps = {"relu": cfg.lr_relu, "tanh": cfg.lr_tanh}, {}
    if cfg.sweep:
        for unit in ("relu", "tanh"):
            lrs[unit], sweeps[unit] = sweep(trainer, unit, deadline, log)
    left = deadline - time.monotonic()
    relu, _ = trainer.train("relu", lrs["relu"], time.monotonic() + left / 3, log=log)
    tanh, _ = trainer.train("tanh", lrs["tanh"], deadline, log=log)
    result = summarize(cfg, relu, tanh, sweeps, time.monotonic() - start, len(data.labels))
    plot_figure1(relu, tanh, cfg.target_error, result["factor_text"], out / "figure1.png")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarize(cfg, relu: Run, tanh: Run, sweeps: dict, wall: float, n_images: int) -> dict:
    r, t = relu.epochs_to(cfg.target_error), tanh.epochs_to(cfg.target_error)
    factor, bound = None, False
    if r is not None and t is not None:
        factor = t / r
    elif r is not None:  # tanh ran out of time or epochs above the target
        factor, bound = len(tanh.epoch_errors) / r, True
    pct = f"{cfg.target_error:.0%}"
    if factor is None:
        text = f"ReLU did not reach {pct} training error; no factor"
    else:
        text = f"tanh/ReLU epochs to {pct} training error: {'>= ' if bound else ''}{factor:.2f}x"
    runs = {}
    for run, ep in ((relu, r), (tanh, t)):
        d = asdict(run)
        d["epochs_to_target"] = ep
        d["images_per_second"] = run.images / run.seconds if run.seconds else None
        runs[run.unit] = d
    summary = (
        f"{text} (ReLU {_to_target(relu, r, pct)}, tanh {_to_target(tanh, t, pct)}; "
        f"paper: 6x); {wall / 60:.1f} min"
    )
    return {
        "experiment": "Figure 1: ReLU vs tanh, epochs to a training error rate on CIFAR-10",
        "network": "conv32 5x5-maxpool-conv32 5x5-avgpool-conv64 5x5-avgpool-fc10",
        "train_images": n_images,
        "target_error": cfg.target_error,
        "epochs_to_target": {"relu": r, "tanh": t},
        "factor": factor,
        "factor_is_lower_bound": bound,
        "factor_text": text,
        "budget_hit": "budget" in (relu.stopped, tanh.stopped),
        "wall_seconds": wall,
        "runs": runs,
        "sweep": sweeps or None,
        "config": asdict(cfg),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "summary": summary,
    }


def _to_target(run: Run, epochs: float | None, pct: str) -> str:
    """ "2.31 epochs at lr 0.01", or "did not reach 25% in 12 epochs at lr 0.001"."""
    if epochs is None:
        return f"did not reach {pct} in {len(run.epoch_errors)} epochs at lr {run.lr:g}"
    return f"{epochs:.2f} epochs at lr {run.lr:g}"
