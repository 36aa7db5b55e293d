"""The one training loop: AMP, DDP, model parallelism, EMA, clipping, exact resume, safe stops.

``train(cfg, callbacks=...)`` runs a whole job and returns the summary dict;
``alexnet.outputs.runner.run_training`` adds the standard callbacks (progress, plots, report,
TensorBoard) and is what ``alexnet train`` calls. ``train_step`` is one optimizer step,
shared with ``alexnet bench``. Exactness: on the CPU, N epochs straight and k epochs
+ resume + N-k epochs give bit-identical weights, also when the stop came from
SIGTERM/SIGINT mid-epoch, because (a) the sampler's order and every augmentation are
functions of (seed, epoch, index) (``alexnet.engine.sampler``), (b) the DataLoader gets its
own generator and so never draws from the global RNG, and (c) the checkpoint holds the
optimizer, schedule, scaler, EMA, every RNG state, the metrics so far and the position
inside the epoch. A step never waits for the device: its loss and hits stay there until
the loop reads them, every ``READ_EVERY`` steps and before validation, a checkpoint or a
stop (a NaN loss is found then, before any file holds its weights).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch

from alexnet.data.fingerprint import compare, fingerprint
from alexnet.engine.callbacks import Callback
from alexnet.engine.checkpoint import (
    checkpoint_dict,
    load_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from alexnet.engine.config import TrainConfig, save_config
from alexnet.engine.distributed import DistInfo, barrier, broadcast_flag, init_distributed, shutdown
from alexnet.engine.parallel import unwrap_model_parallel
from alexnet.engine.rundir import (
    check_run_dir,
    format_table,
    missing_dirs,
    prepare_run_dir,
    read_metrics,
    remove_empty_dirs,
    resume_point,
    summarize_run,
    write_json_atomic,
    write_metrics,
)
from alexnet.engine.schedule import LRSchedule
from alexnet.engine.setup import build_run
from alexnet.engine.step import StopRequest, TrainingDiverged, set_learning_rate, train_step
from alexnet.engine.validate import evaluate, hit_counts
from alexnet.errors import UserError
from alexnet.lock import hold_lock
from alexnet.runtime import prefetched

# Callbacks every run gets on top of its own: the hook the fault-injection tests install
# (tests/faults/fault_runner.py) before calling the CLI.
INSTALLED_CALLBACKS: list[Callback] = []
# Steps between reads of the losses: each read waits for the device, so reading every step
# would leave a GPU idle while the host prepares the next batch. 16 steps of batch 256 on
# an H100 are a fraction of a second; a NaN loss is found that many steps late at most.
READ_EVERY = 16


class Trainer:
    """Holds a run's pieces; ``run()`` is the loop. Build with :func:`train`."""

    def __init__(
        self,
        cfg: TrainConfig,
        resume_state: dict | None,
        dist: DistInfo,
        callbacks: Sequence[Callback] = (),
        allow_data_change: bool = False,
        resume_path: str | None = None,
    ) -> None:
        self.cfg, self.dist = cfg, dist
        self.allow_data_change = allow_data_change
        self.callbacks = [*callbacks, *INSTALLED_CALLBACKS]
        self.out = Path(cfg.out)
        self.parts = run = build_run(cfg, dist, resume_state)  # to_step() feeds the step
        self.device, self.amp, self.channels_last = run.device, run.amp, run.channels_last
        self.origin, self.data = run.origin, run.data
        self.fingerprints = {
            split: fingerprint(ds)
            for split, ds in zip(("train", "val"), self.data.datasets, strict=True)
        }
        self.data_changes: list[dict] = []
        mb = run.model
        self.model, self.model_without_ddp, self.model_kwargs = mb.model, mb.unwrapped, mb.kwargs
        self.frozen_norms, self.notes = mb.frozen_norms, mb.notes
        self.in_dev, self.out_dev = run.in_dev, run.out_dev
        self.optimizer, self.scaler = run.optimizer, run.scaler
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
            step_iterations=cfg.step_iterations,
            min_improvement=cfg.min_improvement,
        )
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
        # (step, images, loss, top-1 hits) of the steps whose device tensors are not yet
        # read into ``partial`` (``_read_steps``)
        self._unread: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []
        self._t0 = time.time()
        self.records: list[dict] = []
        self.best_error = math.inf
        if resume_state is not None:
            self._restore(resume_state)
            where = f"resumed {resume_path}" if resume_path else "resumed"
            spe = self.data.steps_per_epoch
            self.notes.insert(
                0,
                f"{where} in epoch {self.epoch + 1} at step {self.step} (batch "
                f"{self.batch_in_epoch}/{spe} of the epoch)"
                if self.batch_in_epoch
                else f"{where} at epoch {self.epoch} step {self.step}",
            )
        if dist.enabled:  # same initial weights on every rank, different dropout masks
            torch.manual_seed(cfg.seed * 7919 + self.step * 104729 + dist.rank + 1)

    # ---- checkpoints ----
    def state(self) -> dict:
        return checkpoint_dict(
            model=unwrap_model_parallel(self.model_without_ddp),  # one format
            model_name=self.cfg.model,
            model_kwargs=self.model_kwargs,
            classes=list(self.data.classes),
            preprocessing=self.data.preprocessing,
            config=self.cfg.to_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(),
            scaler=self.scaler.state_dict(),
            ema=self.ema.state_dict() if self.ema is not None else None,
            epoch=self.epoch,
            step=self.step,
            rng=rng_state(),
            metrics=self.records[-1] if self.records else None,
            run={
                "batch_in_epoch": self.batch_in_epoch,
                "partial": dict(self.partial),
                "best_error": self.best_error,
                "records": list(self.records),
                "init_from": self.origin,
                "data_fingerprint": self.fingerprints,
                "data_changes": list(self.data_changes),
            },
        )

    def _check_data(self, st: dict) -> None:
        """The same data as the checkpoint's run (moved is fine), or --allow-data-change."""
        saved = st.get("data_fingerprint") or {}  # format-1 checkpoints have none
        changes = [c for split in saved for c in compare(saved[split], self.fingerprints[split])]
        self.data_changes = list(st.get("data_changes") or [])
        if not changes:
            return
        if not self.allow_data_change:
            raise UserError(
                f"cannot resume: the data changed since the checkpoint ({'; '.join(changes)}); "
                "the sampler's order is a function of the image index, so the run would not "
                "continue as it started. Restore the data, start a new run, or pass "
                "--allow-data-change to continue anyway (the run records it)"
            )
        self.data_changes.append({"step": st["step"], "changes": changes})

    def _restore(self, st: dict) -> None:
        self._check_data(st)
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
        if st.get("optimizer") is None:
            raise UserError(
                "cannot resume from a checkpoint without optimizer state (best.pt, an "
                "imported or exported file): resume from last.pt, or start a new run with "
                "--init-from FILE"
            )
        self.optimizer.load_state_dict(st["optimizer"])
        self.schedule.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        if self.ema is not None and st.get("ema") is not None:
            self.ema.load_state_dict(st["ema"])
        self.epoch, self.batch_in_epoch, self.step = st["epoch"], st["batch_in_epoch"], st["step"]
        self.partial = dict(st["partial"])
        self.best_error = st["best_error"]
        records = st.get("records")
        if records is None:  # format 1 kept them in metrics.jsonl only
            records = read_metrics(self.out)
        self.records = [r for r in records if r["epoch"] <= self.epoch]
        self.origin = st.get("init_from") or self.origin
        set_rng_state(st["rng"])

    def save(self, name: str, state: dict | None = None) -> Path | None:
        if not self.dist.is_main:
            return None
        return save_checkpoint(state or self.state(), self.out / "checkpoints" / name)

    # ---- the loop ----
    def images_per_second(self) -> float:
        p = self.partial
        return p["seen"] / max(p["seconds"] + time.time() - self._t0, 1e-9)

    def _emit(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    def run(self) -> dict:
        cfg, t_start = self.cfg, time.time()
        log = _Logger(cfg.quiet, self.dist.is_main)
        log.line(
            f"training {cfg.model} on {self.data.source} ({len(self.data.classes)} classes, "
            f"{self.data.train_size} train / {self.data.val_size} val images) on "
            f"{self.device}, amp={self.amp}, channels_last={self.channels_last}, "
            f"world_size={self.dist.world_size}"
        )
        for note in [*self.notes, self._validation_line(), self.data.scan_summary()]:
            if note:
                log.line(note)
        if self.epoch >= cfg.epochs:
            log.line(
                f"the run has trained {self.epoch} epochs and --epochs is {cfg.epochs}: "
                "nothing to train (pass a larger --epochs to continue it)"
            )
        self._emit("on_train_start")
        with StopRequest() as stop:
            while self.epoch < cfg.epochs:
                if stop.signum is not None:  # arrived during validation or a checkpoint
                    return self._stopped(stop.signum, log)
                finished = self._train_epoch(stop)
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
        summary["weights"] = "ema" if self.ema is not None else "raw"
        if cfg.val_split is not None:
            summary["val_split"] = {
                "fraction": cfg.val_split,
                "seed": cfg.seed,
                "train_images": self.data.train_size,
                "val_images": self.data.val_size,
            }
        if self.dist.is_main:
            write_json_atomic(self.out / "summary.json", summary)
            log.always("\n" + format_table(self.records))
        self._emit("on_train_end", summary)
        barrier()
        return summary

    def _validation_line(self) -> str:
        """What validation scores: the held-out split, and the EMA where the run keeps one
        (evaluate, predict and the report score it too: ``--weights auto``)."""
        cfg, parts = self.cfg, []
        if cfg.val_split is not None:
            parts.append(
                f"{self.data.val_size} images held out of train/ (--val-split {cfg.val_split:g}, "
                f"seed {cfg.seed})"
            )
        if self.ema is not None:
            parts.append(f"the EMA of the weights (--ema-decay {cfg.ema_decay:g})")
        return f"validation scores {' with '.join(parts)}" if parts else ""

    def _stop_all(self, stop: StopRequest) -> bool:
        return broadcast_flag(stop.signum is not None, self.device) if self.dist.enabled else False

    def _set_train_mode(self) -> None:
        self.model.train()
        for m in self.frozen_norms:  # frozen BatchNorms keep their running statistics
            m.eval()

    def _train_epoch(self, stop: StopRequest) -> bool:
        """Train from the saved position to the end of the epoch; False if cut short."""
        cfg, data = self.cfg, self.data
        data.sampler.set_epoch(self.epoch, start=self.batch_in_epoch * cfg.batch_size)
        self._set_train_mode()
        self._emit("on_epoch_start")
        self._t0 = time.time()
        for images, target in prefetched(data.train_loader, self.in_dev):
            self._emit("on_step_start")
            lr = self.schedule.lr_at(self.step)
            set_learning_rate(self.optimizer, lr)
            loss, hits = self._step(images, target)
            self.step += 1
            self.batch_in_epoch += 1
            n = target.numel()
            self._unread.append((self.step, n, loss, hits))
            self.partial["seen"] += n
            self._emit("on_step_end", loss, lr)
            if len(self._unread) >= READ_EVERY:
                self._read_steps()
            if stop.signum is not None or self._stop_all(stop):
                stop.signum = stop.signum or signal.SIGTERM
                break
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                break
        self._read_steps()  # before validation, a checkpoint or a stop
        self.partial["seconds"] += time.time() - self._t0
        self._t0 = time.time()
        return self.batch_in_epoch >= data.steps_per_epoch

    def _step(self, images, target) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step -> its loss and top-1 hits, 0-d tensors on the device."""
        images, target = self.parts.to_step(images, target, self.step)
        loss, logits = train_step(
            self.model,
            self.optimizer,
            self.scaler,
            images,
            target,
            device=self.device,
            amp=self.amp,
            label_smoothing=self.cfg.label_smoothing,
            grad_clip=self.cfg.grad_clip,
        )
        if self.ema is not None:
            self.ema.update_parameters(self.model_without_ddp)
        return loss, hit_counts(logits.float(), target, ks=(1,))[0]

    def _read_steps(self) -> None:
        """Adds the unread steps' losses and hits to the epoch's sums, in step order (the
        float64 sums of before, bit for bit): one wait for the device. A NaN or infinite
        loss stops the run here, before any checkpoint holds the weights it made."""
        if not self._unread:
            return
        steps, sizes, losses, hits = zip(*self._unread, strict=True)
        self._unread = []
        p = self.partial
        for step, n, loss, h in zip(
            steps, sizes, torch.stack(losses).tolist(), torch.stack(hits).tolist(), strict=True
        ):
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss is {loss} at step {step} (epoch {self.epoch + 1}); "
                    f"stopped without saving: the last good checkpoint "
                    f"{self.out / 'checkpoints' / 'last.pt'} is untouched. Try a lower --lr, "
                    "--grad-clip, or --amp off"
                )
            p["loss"] += loss * n
            p["correct"] += h

    def _end_epoch(self, log: _Logger, partial: bool) -> None:
        p = self.partial
        t0 = time.time()
        eval_model = self.ema.module if self.ema is not None else self.model_without_ddp
        res = evaluate(
            [eval_model],
            self.data.val_batches(self.in_dev),
            self.in_dev,
            amp=self.amp,
            channels_last=self.channels_last,
        )
        seen = max(1, p["seen"])
        rec = {
            "epoch": self.epoch + 1,
            "train_loss": p["loss"] / seen,
            "train_top1_error": 1.0 - p["correct"] / seen,
            "val_loss": res.loss,
            "val_top1_error": res.top1_error,
            "val_top5_error": res.top5_error,
            "lr": self.optimizer.param_groups[0]["lr"]
            / self.optimizer.param_groups[0].get("lr_mult", 1.0),
            "images_per_second": p["seen"] * self.dist.world_size / max(p["seconds"], 1e-9),
            "seconds": p["seconds"] + time.time() - t0,
        }
        if self.device.type == "cuda":  # the peak since the run (or resume) began
            rec["max_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
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
            f"{rec['images_per_second']:.1f} img/s"
            + (f", {rec['max_memory_gib']:.1f} GiB peak" if "max_memory_gib" in rec else "")
            + (" (lr divided)" if decayed else "")
        )
        if self.dist.is_main:
            state = self.state()
            self.save("last.pt", state)
            if improved:
                self.save("best.pt", dict(state, optimizer=None, scaler=None))
            if self.cfg.keep_best:
                self._keep_best(dict(state, optimizer=None, scaler=None), rec)
            write_metrics(self.out, self.records)
        self._emit("on_epoch_end", rec)
        barrier()

    def _keep_best(self, state: dict, rec: dict) -> None:
        """--keep-best K: checkpoints/best-epochNNN.pt for the K epochs of lowest val top-1
        error so far (ties: the earlier epoch); this epoch's is written (atomically) before
        one that drops out of the K is deleted. A partial epoch never counts."""
        ranked = sorted(
            (r["val_top1_error"], r["epoch"])
            for r in self.records
            if not r.get("partial") and not math.isnan(r["val_top1_error"])
        )
        keep = {epoch for _, epoch in ranked[: self.cfg.keep_best]}
        if not rec.get("partial") and rec["epoch"] in keep:
            self.save(f"best-epoch{rec['epoch']:03d}.pt", state)
        for p in (self.out / "checkpoints").glob("best-epoch*.pt"):
            epoch = p.stem.removeprefix("best-epoch")
            if epoch.isdigit() and int(epoch) not in keep:
                p.unlink(missing_ok=True)

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
    """Rank 0 prints the run's lines to stderr; ``always`` prints on every rank."""

    def __init__(self, quiet: bool, is_main: bool) -> None:
        self.quiet, self.is_main = quiet, is_main

    def line(self, msg: str) -> None:
        if self.is_main:
            print(msg, file=sys.stderr, flush=True)

    def always(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)


def train(
    cfg: TrainConfig,
    *,
    resume: str | dict | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    allow_data_change: bool = False,
    resume_path: str | None = None,
) -> dict:
    """Run a training job described by ``cfg``; returns the summary (summary.json).

    ``resume``: a checkpoint path, "auto" for the newest resumable checkpoint in
    ``cfg.out`` (:func:`alexnet.engine.rundir.resume_point`: a fresh start where ``cfg.out`` holds
    no run, a one-line refusal listing each checkpoint tried where it holds a run but
    nothing resumable, unless ``overwrite``), or a checkpoint dict already loaded.
    The run directory is locked for the whole job (rank 0 holds it): a second process
    training into it fails at once, naming this one. Every start-up check (data, model,
    device, AMP, --init-from) runs before the run directory is written: a failed start
    leaves it as it was (a directory it had to create is removed again). A resume refuses
    data that changed since the checkpoint unless ``allow_data_change`` (then recorded in
    the checkpoints). ``resume_path``: the file a ``resume`` dict was read from (for the
    log's ``resumed PATH at epoch E step S`` line).
    """
    from alexnet.engine.checkpoint import load_checkpoint

    cfg.validate()
    out = Path(cfg.out)
    dist = init_distributed(
        "cuda"
        if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    created = missing_dirs(out) if dist.is_main else []
    lock = hold_lock(out, "train", name=f"--out {out}") if dist.is_main else nullcontext()
    try:
        with lock:
            state = resume if isinstance(resume, dict) else None
            if resume == "auto":
                found, state = resume_point(out, overwrite=overwrite)
                resume_path = str(found) if found else None
            elif isinstance(resume, (str, os.PathLike)):
                state, resume_path = load_checkpoint(resume, mmap=True), str(resume)
            if dist.is_main:
                check_run_dir(out, resume=state is not None, overwrite=overwrite)
            trainer = Trainer(cfg, state, dist, callbacks, allow_data_change, resume_path)
            if dist.is_main:
                prepare_run_dir(out, resume=state is not None, overwrite=overwrite)
                save_config(cfg, out / "config.yaml")
            created = []  # the run has started: its directory stays
            barrier()
            return trainer.run()
    except BaseException:
        remove_empty_dirs(created)  # after the lock's release (its file goes with it)
        raise
    finally:
        shutdown()
