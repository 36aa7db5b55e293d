"""Throughput of training steps and inference: alexnet, alexnet_owt and torchvision's alexnet.

Every configuration (model x mode x precision x memory format x compile) runs
in the same process, in rounds: each round takes the settings in turn, builds the
models of one setting, warms each up for ``warmup`` steps, then times ``steps``
steps of each, one model's step after the other's, and frees them; a
configuration's figure is its median over the rounds, so a busy machine slows all
contenders alike.
Ratios compare with torchvision's alexnet in the same mode, precision, format
and compile setting ("vs tv", the median of the rounds' ratios, each from steps
timed in turn), and with torchvision's eager fp32 NCHW in the same mode ("vs tv
fp32", per round too), and with the machine: each round also times a large
``torch.mm`` per dtype (``alexnet.machine.matmul_peak``), and a row's "peak" is the
share of that peak it reaches, counting 2 x MACs per image for inference and
6 x MACs (forward, and backward for inputs and weights) for a training step, with
the MACs of ``alexnet.outputs.summary`` (0.72 G for alexnet at 227 px, 0.71 G for
torchvision's at 224). Inference in bf16 keeps the weights in bf16
(``runtime.prepare_model(..., inference_amp=...)``), so autocast casts only
the input; training steps run as ``alexnet train``'s: autocast, float32 weights.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from alexnet.errors import UserError
from alexnet.machine import AMP_DTYPES, matmul_peak, synchronize
from alexnet.models import DEFAULT_MODEL, create_model
from alexnet.outputs.summary import summarize
from alexnet.runtime import autocast, prefetched, prepare_model

MODELS = ("alexnet", "alexnet_owt", "torchvision")
MODES = ("train", "infer")
AMPS = ("off", "bf16")
FORMATS = ("nchw", "channels_last")


@dataclass
class BenchRow:
    model: str
    mode: str
    amp: str
    format: str
    compiled: bool
    batch_size: int
    images_per_second: float
    vs_torchvision: float | None = None
    vs_torchvision_fp32: float | None = None
    gflops: float | None = None  # achieved: FLOPs per image x images/s / 1e9
    peak_gflops: float | None = None  # the matmul peak of the row's dtype, same run
    peak_share: float | None = None  # gflops / peak_gflops

    def to_dict(self) -> dict:
        return asdict(self)


def _build(name: str) -> tuple[nn.Module, int]:
    if name == "torchvision":
        import torchvision

        return torchvision.models.alexnet(weights=None), 224
    model = create_model(name, num_classes=1000)
    return model, getattr(getattr(model, "config", None), "input_size", 224)


def _flops_per_image(models: Sequence[str]) -> dict[tuple[str, str], float]:
    """(model, mode) -> FLOPs per image: 2 x MACs to infer, 6 x MACs to train."""
    out = {}
    for name in models:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model, size = _build(name)
        macs = summarize(model, size).macs
        out[(name, "infer")], out[(name, "train")] = 2.0 * macs, 6.0 * macs
    return out


class _Case:
    """One configuration, built once; ``run(n)`` times n steps."""

    def __init__(
        self,
        model: str,
        mode: str,
        amp: str,
        fmt: str,
        compiled: bool,
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.key = (model, mode, amp, fmt, compiled)
        net, size = _build(model)
        cl = fmt == "channels_last"
        # inference stores the weights in the autocast precision, as evaluate/predict
        # can (runtime.prepare_model); training keeps float32 weights for the optimizer
        net = prepare_model(net, device, cl, inference_amp=amp if mode == "infer" else "off")
        net.train(mode == "train")
        if compiled:  # each case compiles afresh: dynamo's recompile limit (8 per code
            torch._dynamo.reset()  # object) would otherwise run later cases eagerly
        self.net = torch.compile(net) if compiled else net
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, 3, size, size, generator=g).to(device)
        self.x = x.contiguous(memory_format=torch.channels_last) if cl else x
        self.y = torch.randint(0, 1000, (batch_size,), generator=g).to(device)
        self.opt = (
            torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
            if mode == "train"
            else None
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.device, self.amp, self.mode = device, amp, mode
        self.samples: list[float] = []

    def step(self) -> None:
        if self.mode == "train":  # alexnet train's step (its SGD is PaperSGD by default)
            from alexnet.engine.step import train_step

            train_step(
                self.net, self.opt, self.scaler, self.x, self.y, device=self.device, amp=self.amp
            )
        else:
            with torch.inference_mode(), autocast(self.device, self.amp):
                self.net(self.x)

    def run(self, steps: int) -> None:
        self.samples.append(_timed(self.step, steps, self.x.shape[0], self.device))


def run_bench(
    *,
    models: Sequence[str] = MODELS,
    modes: Sequence[str] = MODES,
    amps: Sequence[str] = AMPS,
    formats: Sequence[str] = FORMATS,
    compile_modes: Sequence[bool] = (False,),
    batch_size: int = 64,
    steps: int = 3,
    warmup: int = 1,
    rounds: int = 3,
    device: str = "cpu",
    progress=None,
) -> list[BenchRow]:
    """Measure every combination; returns one row per configuration, with ratios."""
    errors = [
        f"unknown {what} {v!r}"
        for what, vals, allowed in (
            ("model", models, MODELS),
            ("mode", modes, MODES),
            ("amp", amps, ("off", "bf16", "fp16")),
            ("format", formats, FORMATS),
        )
        for v in vals
        if v not in allowed
    ]
    if batch_size < 1 or steps < 1 or rounds < 1 or warmup < 0:
        errors.append("batch size, steps and rounds must be >= 1, warmup >= 0")
    if errors:
        raise UserError("; ".join(errors), exit_code=2)
    dev = torch.device(device)
    keys = list(itertools.product(models, modes, amps, formats, compile_modes))
    # the ratio baselines are measured even when not asked for
    for m, mode in itertools.product(("torchvision",), modes):
        for base in ((m, mode, "off", "nchw", False),):
            if base not in keys:
                keys.append(base)
    # The models of one setting are in memory together (a training case holds weights,
    # gradients and momentum: ~0.7 GB for these models), rebuilt each round outside the
    # timing, and take their timed steps in turn: on a shared machine the load changes
    # within seconds, and models timed minutes apart compared 2x apart in either direction.
    settings: dict[tuple, list[tuple]] = {}
    for k in keys:
        settings.setdefault(k[1:], []).append(k)
    samples: dict[tuple, list[float]] = {k: [] for k in keys}  # img/s per round
    peaks: dict[str, list[float]] = {k[2]: [] for k in keys}  # amp -> torch.mm FLOP/s per round
    flops = _flops_per_image(sorted({k[0] for k in keys}))  # with the baseline's
    for _ in range(rounds):
        for a, v in peaks.items():
            v.append(matmul_peak(dev, AMP_DTYPES[a]))
        for group in settings.values():
            cases = [_Case(*k, batch_size, dev) for k in group]
            for case in cases:
                for _ in range(warmup):
                    case.step()
            for _ in range(steps):
                for case in cases:
                    case.run(1)
            for k, case in zip(group, cases, strict=True):
                seconds = sum(batch_size / ips for ips in case.samples)
                samples[k].append(steps * batch_size / seconds)
            del cases, case
            if progress is not None:
                progress.update(len(group))
    ips = {k: statistics.median(v) for k, v in samples.items()}
    peak = {a: max(v) / 1e9 for a, v in peaks.items()}  # noise only slows: the best round

    def vs(k: tuple, base: tuple) -> float | None:
        """Median over rounds of the ratio to base: same round, timed step by step in turn
        when both are of one setting."""
        if base not in samples:
            return None
        return statistics.median(a / b for a, b in zip(samples[k], samples[base], strict=True))

    rows = []
    for (model, mode, amp, fmt, comp), v in ips.items():
        tv = vs((model, mode, amp, fmt, comp), ("torchvision", mode, amp, fmt, comp))
        tv32 = vs((model, mode, amp, fmt, comp), ("torchvision", mode, "off", "nchw", False))
        gflops = flops[(model, mode)] * v / 1e9 if (model, mode) in flops else None
        rows.append(
            BenchRow(
                model,
                mode,
                amp,
                fmt,
                comp,
                batch_size,
                round(v, 2),
                round(tv, 3) if tv else None,
                round(tv32, 3) if tv32 else None,
                round(gflops, 2) if gflops else None,
                round(peak[amp], 2) if amp in peak else None,
                round(gflops / peak[amp], 4) if gflops and amp in peak else None,
            )
        )
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    head = (
        f"{'model':<12} {'mode':<6} {'amp':<5} {'format':<14} {'compile':<8} "
        f"{'img/s':>9} {'vs tv':>7} {'vs tv fp32':>11} {'GFLOP/s':>8} {'peak':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r.mode, r.amp, r.format, r.compiled, r.model)):
        f = lambda v: f"{v:.2f}x" if v is not None else "-"  # noqa: E731
        share = f"{100 * r.peak_share:.0f}%" if r.peak_share is not None else "-"
        lines.append(
            f"{r.model:<12} {r.mode:<6} {r.amp:<5} {r.format:<14} "
            f"{'yes' if r.compiled else 'no':<8} {r.images_per_second:>9.1f} "
            f"{f(r.vs_torchvision):>7} {f(r.vs_torchvision_fp32):>11} "
            f"{r.gflops or 0:>8.1f} {share:>6}"
        )
    return "\n".join(lines)


# --- Issue 5, third target: the training loop fed from the packed store -------------


@dataclass
class FeedResult:
    """Training images/s of the same loop fed from ``data`` and from memory."""

    data: str
    model: str
    batch_size: int
    workers: int
    amp: str
    channels_last: bool
    augment_on: str
    store_images_per_second: float
    memory_images_per_second: float

    @property
    def ratio(self) -> float:
        return self.store_images_per_second / self.memory_images_per_second

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def store_feeding(
    data: str,
    *,
    model: str = DEFAULT_MODEL,
    batch_size: int = 64,
    steps: int = 4,
    rounds: int = 3,
    workers: int | None = None,
    amp: str = "auto",
    channels_last: str = "auto",
    device: str = "cpu",
    augment_on: str = "auto",
) -> FeedResult:
    """Does the data path keep the model busy? The training loop's own loader
    (``engine.setup.build_data``: the packed store, or any ``--data`` source, read in
    ``workers`` processes; the paper's augmentation there or, by ``augment_on``, on
    whole batches in the step as ``alexnet train`` runs it) feeds the training step
    of ``alexnet train`` for ``rounds`` x ``steps`` steps; then the same step runs as
    long on batches already in memory (augmented there again when the step augments).
    Each figure is the median over its rounds. The target is a ratio of at least 0.95."""
    from alexnet.engine.config import TrainConfig
    from alexnet.engine.distributed import DistInfo
    from alexnet.engine.setup import build_run
    from alexnet.engine.step import train_step

    cfg = TrainConfig(
        data=data,
        model=model,
        batch_size=batch_size,
        workers=workers,
        amp=amp,
        channels_last=channels_last,
        device=device,
        augment_on=augment_on,
        quiet=True,
    )
    cfg.validate()
    run = build_run(cfg, DistInfo())  # what `alexnet train` builds
    bundle, net = run.data, run.model.model.train()

    def step(images: torch.Tensor, target: torch.Tensor, index: int = 0) -> None:
        images, target = run.to_step(images, target, index)  # as Trainer._step
        train_step(net, run.optimizer, run.scaler, images, target, device=run.device, amp=run.amp)

    batches = prefetched(_endless(bundle), run.in_dev)  # as Trainer._train_epoch
    kept = [next(batches) for _ in range(min(steps, bundle.steps_per_epoch))]
    for b in kept:  # warm-up, and the batches the in-memory rounds reuse
        step(*b)
    # The loader's workers read ahead (prefetch_factor 4 each) while the model
    # trains; drain what they gathered during the warm-up, so the timed steps
    # see the steady state: batches made while the previous steps trained.
    for _ in range(max(1, bundle.train_loader.num_workers) * 4):
        next(batches)
    dev = run.device
    fed = [_timed(lambda: step(*next(batches)), steps, batch_size, dev) for _ in range(rounds)]
    cycle = itertools.cycle(kept)
    mem = [_timed(lambda: step(*next(cycle)), steps, batch_size, dev) for _ in range(rounds)]
    return FeedResult(
        data,
        model,
        batch_size,
        bundle.train_loader.num_workers,
        run.amp,
        run.channels_last,
        "device" if bundle.on_device is not None else "loader",
        round(statistics.median(fed), 2),
        round(statistics.median(mem), 2),
    )


def _endless(bundle):
    epoch = 0
    while True:
        bundle.sampler.set_epoch(epoch)
        yield from bundle.train_loader
        epoch += 1


def _timed(fn, steps: int, batch_size: int, device: torch.device) -> float:
    """Images/s of ``steps`` calls of fn, the device's queue drained before and after (the
    step itself never waits for it)."""
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - t0)
