"""The one training loop: AMP, DDP, model parallelism, EMA, clipping, exact resume, safe stops.

``train(cfg)`` runs a whole job and returns the summary dict. It is what
``alexnet train`` and ``torchrun -m alexnet train`` call. Exactness: on the CPU,
N epochs straight and k epochs + ``--resume`` + N-k epochs give bit-identical
weights, also when the stop came from SIGTERM/SIGINT mid-epoch, because
(a) the sampler's order and every augmentation are functions of (seed, epoch,
index) (``alexnet.sampler``), (b) the DataLoader gets its own generator and so
never draws from the global RNG, and (c) the checkpoint holds the optimizer,
schedule, scaler, EMA and every RNG state, plus the position inside the epoch.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from alexnet.checkpoint import (
    CHECKPOINT_VERSION,
    load_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from alexnet.config import TrainConfig, save_config
from alexnet.distributed import DistInfo, barrier, broadcast_flag, init_distributed, shutdown
from alexnet.errors import UserError
from alexnet.evaluate import accuracy_counts, evaluate
from alexnet.parallel import unwrap_model_parallel
from alexnet.rundir import (
    format_table,
    prepare_run_dir,
    read_metrics,
    summarize_run,
    write_json_atomic,
    write_metrics,
)
from alexnet.runtime import (
    autocast,
    default_channels_last,
    resolve_amp,
    resolve_device,
    to_device,
)
from alexnet.schedule import LRSchedule
from alexnet.trainsetup import build_data, build_model, build_optimizer

# Fault injection for the reliability suite (tests/faults): a NaN loss at optimizer
# step K; the process signalling itself with SIG after step K ("SIG:K").
_NAN_STEP_ENV = "ALEXNET_FAULT_NAN_AT_STEP"
_SIGNAL_STEP_ENV = "ALEXNET_FAULT_SIGNAL_AT_STEP"


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


class Trainer:
    """Holds a run's pieces; ``run()`` is the loop. Build with :func:`train`."""

    def __init__(self, cfg: TrainConfig, resume_state: dict | None, dist: DistInfo) -> None:
        self.cfg, self.dist = cfg, dist
        self.out = Path(cfg.out)
        device = resolve_device(cfg.device)
        if device.type == "cuda" and dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        self.device = device
        self.amp = resolve_amp(cfg.amp, device, training=True)
        self.channels_last = (
            default_channels_last(device, True)
            if cfg.channels_last == "auto"
            else cfg.channels_last == "on"
        )
        _seed_everything(cfg.seed)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        self.data = build_data(cfg, dist, self.device)
        self.model, self.model_without_ddp, self.model_kwargs = build_model(
            cfg, len(self.data.classes), self.device, self.channels_last, dist
        )
        self.in_dev = getattr(self.model_without_ddp, "input_device", self.device)
        self.out_dev = getattr(self.model_without_ddp, "output_device", self.device)
        self.optimizer = build_optimizer(cfg, self.model_without_ddp)
        spe = self.data.steps_per_epoch
        total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.epochs * spe, cfg.max_steps)
        self.schedule = LRSchedule(
            cfg.lr,
            cfg.schedule,
            total_steps=total,
            steps_per_epoch=spe,
            warmup_steps=round(cfg.warmup_epochs * spe),
            lr_factor=cfg.lr_factor,
            patience=cfg.patience,
            max_decays=cfg.max_decays,
            step_epochs=cfg.step_epochs,
            min_improvement=cfg.min_improvement,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.ema = None
        if cfg.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.model_without_ddp,
                device=self.device,
                multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                use_buffers=True,
            )
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.records: list[dict] = []
        self.best_error = math.inf
        if resume_state is not None:
            self._restore(resume_state)
        if dist.enabled:  # same initial weights on every rank, different dropout masks
            torch.manual_seed(cfg.seed * 7919 + self.step * 104729 + dist.rank + 1)

    # ---- checkpoints ----
    def state(self, metrics: dict | None = None) -> dict:
        return {
            "format_version": CHECKPOINT_VERSION,
            "model": unwrap_model_parallel(self.model_without_ddp),  # one format
            "model_name": self.cfg.model,
            "model_kwargs": self.model_kwargs,
            "classes": list(self.data.classes),
            "preprocessing": self.data.preprocessing,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "partial": dict(self.partial),
            "best_error": self.best_error,
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "metrics": self.records[-1] if self.records else None,
        }

    def _restore(self, st: dict) -> None:
        if st["model_name"] != self.cfg.model or list(st["classes"]) != list(self.data.classes):
            raise UserError(
                f"cannot resume: the checkpoint is for model {st['model_name']!r} with "
                f"{len(st['classes'])} classes, this run has {self.cfg.model!r} with "
                f"{len(self.data.classes)} classes"
            )
        if hasattr(self.model_without_ddp, "load_merged_state_dict"):  # --model-parallel
            self.model_without_ddp.load_merged_state_dict(st["model"])
        else:
            load_weights(self.model_without_ddp, st["model"], "resume checkpoint", st["model_name"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.schedule.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        if self.ema is not None and st.get("ema") is not None:
            self.ema.load_state_dict(st["ema"])
        self.epoch, self.batch_in_epoch, self.step = st["epoch"], st["batch_in_epoch"], st["step"]
        self.partial = dict(st["partial"])
        self.best_error = st["best_error"]
        self.records = [r for r in read_metrics(self.out) if r["epoch"] <= self.epoch]
        set_rng_state(st["rng"])

    def save(self, name: str, state: dict | None = None) -> Path | None:
        if not self.dist.is_main:
            return None
        return save_checkpoint(state or self.state(), self.out / "checkpoints" / name)

    # ---- the loop ----
    def run(self) -> dict:
        cfg, t_start = self.cfg, time.time()
        log = _Logger(cfg.quiet, self.dist.is_main)
        log.line(
            f"training {cfg.model} on {self.data.source} ({len(self.data.classes)} classes, "
            f"{self.data.train_size} train / {self.data.val_size} val images) on "
            f"{self.device}, amp={self.amp}, channels_last={self.channels_last}, "
            f"world_size={self.dist.world_size}"
        )
        if self.data.scan_summary():
            log.line(self.data.scan_summary())
        with StopRequest() as stop:
            while self.epoch < cfg.epochs:
                finished = self._train_epoch(stop, log)
                if stop.signum is not None or self._stop_all(stop):
                    return self._stopped(stop.signum or signal.SIGTERM, log)
                if not finished and self.batch_in_epoch == 0:
                    break
                self._end_epoch(log, partial=not finished)
                if not finished:
                    break
        if self.data.skipped():
            log.always(f"skipped {self.data.skipped()} unreadable image(s) (--skip-bad)")
        summary = summarize_run(self.records, time.time() - t_start)
        if self.dist.is_main:
            write_json_atomic(self.out / "summary.json", summary)
            log.always("\n" + format_table(self.records))
            _write_report(self.out, log)
        barrier()
        return summary

    def _stop_all(self, stop: StopRequest) -> bool:
        return broadcast_flag(stop.signum is not None, self.device) if self.dist.enabled else False

    def _train_epoch(self, stop: StopRequest, log: _Logger) -> bool:
        """Train from the saved position to the end of the epoch; False if cut short."""
        cfg, data = self.cfg, self.data
        data.sampler.set_epoch(self.epoch, start=self.batch_in_epoch * cfg.batch_size)
        self.model.train()
        nan_step = int(os.environ.get(_NAN_STEP_ENV, "-1"))
        sig, _, sig_step = os.environ.get(_SIGNAL_STEP_ENV, "0:-1").partition(":")
        bar = log.bar(
            total=data.steps_per_epoch,
            initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
        )
        t0 = time.time()
        for images, target in data.train_loader:
            lr = self.schedule.lr_at(self.step)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            loss, correct = self._step(images, target, inject_nan=self.step + 1 == nan_step)
            self.step += 1
            self.batch_in_epoch += 1
            if self.step == int(sig_step):
                os.kill(os.getpid(), int(sig))
            n = target.numel()
            p = self.partial
            p["loss"] += loss * n
            p["correct"] += correct
            p["seen"] += n
            elapsed = p["seconds"] + time.time() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{p['seen'] / elapsed:.1f}")
            if stop.signum is not None or self._stop_all(stop):
                stop.signum = stop.signum or signal.SIGTERM
                break
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                break
        bar.close()
        self.partial["seconds"] += time.time() - t0
        return self.batch_in_epoch >= data.steps_per_epoch

    def _step(self, images, target, inject_nan: bool) -> tuple[float, int]:
        images = to_device(images, self.in_dev, self.channels_last)
        target = target.to(self.out_dev, non_blocking=True)
        with autocast(self.device, self.amp):
            logits = self.model(images)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=self.cfg.label_smoothing)
        if inject_nan:
            loss = loss * float("nan")
        if not torch.isfinite(loss).all():
            raise TrainingDiverged(
                f"loss is {loss.item()} at step {self.step + 1} (epoch {self.epoch + 1}); "
                f"stopped without saving: the last good checkpoint "
                f"{self.out / 'checkpoints' / 'last.pt'} is untouched. Try a lower --lr, "
                "--grad-clip, or --amp off"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model_without_ddp)
        correct = accuracy_counts(logits.detach().float(), target, ks=(1,))[0]
        return loss.item(), correct

    def _end_epoch(self, log: _Logger, partial: bool) -> None:
        cfg, p = self.cfg, self.partial
        t0 = time.time()
        eval_model = self.ema.module if self.ema is not None else self.model_without_ddp
        res = evaluate(
            [eval_model],
            self.data.val_loader,
            self.in_dev,
            amp=self.amp,
            channels_last=self.channels_last,
            max_batches=cfg.eval_batches,
        )
        seen = max(1, p["seen"])
        rec = {
            "epoch": self.epoch + 1,
            "train_loss": p["loss"] / seen,
            "train_top1_error": 1.0 - p["correct"] / seen,
            "val_loss": res.loss,
            "val_top1_error": res.top1_error,
            "val_top5_error": res.top5_error,
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_second": p["seen"] * self.dist.world_size / max(p["seconds"], 1e-9),
            "seconds": p["seconds"] + time.time() - t0,
        }
        if partial:
            rec["partial"] = True
        self.records.append(rec)
        decayed = self.schedule.end_epoch(res.top1_error)
        improved = res.top1_error < self.best_error
        if improved:
            self.best_error = res.top1_error
        if not partial:
            self.epoch += 1
            self.batch_in_epoch = 0
            self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        log.line(
            f"epoch {rec['epoch']}: train loss {rec['train_loss']:.4f}, val top-1 error "
            f"{rec['val_top1_error']:.2%}, top-5 {rec['val_top5_error']:.2%}, "
            f"{rec['images_per_second']:.1f} img/s" + (" (lr divided)" if decayed else "")
        )
        if self.dist.is_main:
            state = self.state()
            self.save("last.pt", state)
            if improved:
                best = dict(state, optimizer=None, scaler=None)
                self.save("best.pt", best)
            write_metrics(self.out, self.records)
            _plot(self.out, self.records)
        barrier()

    def _stopped(self, signum: int, log: _Logger) -> dict:
        path = self.save("last.pt")
        barrier()
        name = signal.Signals(signum).name
        log.always(
            f"stopped by {name} after step {self.step} (epoch {self.epoch + 1}, batch "
            f"{self.batch_in_epoch}); checkpoint written to {path or self.out / 'checkpoints'}.\n"
            f"Resume with: alexnet train --out {self.out} --resume auto"
        )
        raise SystemExit(128 + signum)


class _Logger:
    """Rank 0 prints; ``quiet`` drops the progress bars but keeps a line per epoch."""

    def __init__(self, quiet: bool, is_main: bool) -> None:
        self.quiet, self.is_main = quiet, is_main

    def line(self, msg: str) -> None:
        if self.is_main:
            print(msg, file=sys.stderr, flush=True)

    def always(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def bar(self, **kw):
        if self.quiet or not self.is_main:
            return _NoBar()
        from tqdm import tqdm

        return tqdm(leave=False, dynamic_ncols=True, file=sys.stderr, unit="batch", **kw)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _plot(out: Path, records: list[dict]) -> None:
    try:
        from alexnet.viz import plot_curves
    except ImportError:
        return
    plot_curves(records, out / "plots" / "curves.png")


def _write_report(out: Path, log: _Logger) -> None:
    try:
        from alexnet.report import write_report
    except ImportError:
        return
    try:
        path = write_report(out)
        log.line(f"report: {path}")
    except Exception as e:  # the report must never cost a finished run
        log.always(f"warning: could not write the run report: {e}")


def train(cfg: TrainConfig, *, resume: str | None = None, overwrite: bool = False) -> dict:
    """Run a training job described by ``cfg``; returns the summary (summary.json).

    ``resume``: a checkpoint path, or "auto" for the newest complete checkpoint in
    ``cfg.out`` (a fresh start when there is none).
    """
    from alexnet.checkpoint import find_latest_checkpoint, load_checkpoint

    cfg.validate()
    out = Path(cfg.out)
    dist = init_distributed(
        "cuda"
        if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    try:
        state = None
        if resume == "auto":
            found = find_latest_checkpoint(out)
            state = load_checkpoint(found) if found else None
        elif resume:
            state = load_checkpoint(resume)
        if dist.is_main:
            prepare_run_dir(out, resume=resume is not None, overwrite=overwrite)
            save_config(cfg, out / "config.yaml")
        barrier()
        return Trainer(cfg, state, dist).run()
    finally:
        shutdown()
