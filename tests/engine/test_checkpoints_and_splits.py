"""--val-split (a seeded, stratified hold-out of train/ that a resume keeps), --keep-best
(the K best epochs' checkpoints), and the EMA scored alike by training and evaluate."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter

import pytest
import torch

from alexnet.cli import main
from alexnet.data.split import stratified_split
from alexnet.engine.checkpoint import load_checkpoint
from alexnet.engine.train import train
from alexnet.progress import progress


def test_stratified_split_is_seeded_per_class_and_disjoint():
    targets = [0] * 10 + [1] * 5 + [2] * 2 + [3]
    keep, held = stratified_split(targets, 0.2, seed=7)
    assert sorted(keep + held) == list(range(len(targets)))
    assert Counter(targets[i] for i in held) == {0: 2, 1: 1, 2: 1}  # one at least, 3 has 1
    assert (keep, held) == stratified_split(targets, 0.2, seed=7)
    assert held != stratified_split(targets, 0.2, seed=8)[1]


def test_val_split_is_recorded_and_a_resume_validates_on_the_same_images(
    tiny_data, tmp_path, train_config
):
    data = tmp_path / "train-only"
    shutil.copytree(tiny_data / "train", data / "train")
    out = tmp_path / "run"
    cfg = train_config(data, out, epochs=1, val_split=0.25, quiet=False)
    first = train(cfg)
    assert first["val_split"] == {"fraction": 0.25, "seed": 5, "train_images": 18, "val_images": 6}
    resumed = train(train_config(data, out, epochs=2, val_split=0.25), resume="auto")
    assert resumed["val_split"] == first["val_split"]
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["config"]["val_split"] == 0.25 and ck["epoch"] == 2


def test_keep_best_keeps_the_k_lowest_val_errors(tiny_data, tmp_path, train_config):
    out = tmp_path / "run"
    train(train_config(tiny_data, out, epochs=4, keep_best=2, lr=0.01))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = sorted((r["val_top1_error"], r["epoch"]) for r in records)[:2]
    kept = sorted(p.name for p in (out / "checkpoints").glob("best-epoch*.pt"))
    assert kept == sorted(f"best-epoch{e:03d}.pt" for _, e in best)
    assert (out / "checkpoints" / "best.pt").is_file()
    top = load_checkpoint(out / "checkpoints" / f"best-epoch{best[0][1]:03d}.pt")
    assert top["optimizer"] is None and top["metrics"]["epoch"] == best[0][1]


def test_evaluate_scores_the_ema_that_training_validated(tiny_data, tmp_path, train_config, capsys):
    out = tmp_path / "run"
    summary = train(train_config(tiny_data, out, epochs=1, ema_decay=0.5, lr=0.01))
    assert summary["weights"] == "ema"
    capsys.readouterr()
    argv = ["evaluate", str(out / "checkpoints" / "best.pt"), "--data", str(tiny_data)]
    argv += ["--json", "--amp", "off", "--device", "cpu", "--workers", "0"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["weights"].startswith("EMA (decay 0.5)")
    assert res["top1_error"] == pytest.approx(summary["best"]["val_top1_error"])
    assert main([*argv, "--weights", "raw"]) == 0  # the optimizer's weights are still there
    assert json.loads(capsys.readouterr().out)["weights"].startswith("raw")


def test_progress_off_a_terminal_is_plain_lines():
    log = io.StringIO()  # not a terminal
    for _ in progress(range(5), desc="statistics of data", unit="img", file=log):
        torch.zeros(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0].startswith("statistics of data: 0/5 img (0%)")
    assert lines[-1].startswith("statistics of data: 5/5 img (100%)") and "eta 00:00" in lines[-1]
