"""End-to-end training runs on tiny generated data: files, resume bit-equality, stops, NaN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from alexnet.checkpoint import load_checkpoint
from alexnet.cli import main
from alexnet.config import TrainConfig
from alexnet.rundir import METRIC_KEYS
from alexnet.train import train


def tiny_cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        epochs=2,
        batch_size=4,
        lr=0.001,
        workers=0,
        quiet=True,
        device="cpu",
        amp="off",
        channels_last="off",
        seed=5,
        model_kwargs={"init": "kaiming"},
    )
    base.update(kw)
    return TrainConfig(**base)


def weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_directory_contents(tiny_data, tmp_path):
    out = tmp_path / "run"
    summary = train(tiny_cfg(tiny_data, out))
    assert (out / "config.yaml").exists()
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["batch_size"] == 4 and cfg["model"] == "alexnet"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(METRIC_KEYS) <= set(r)
        for k in ("train_top1_error", "val_top1_error", "val_top5_error"):
            assert 0.0 <= r[k] <= 1.0
    assert (out / "checkpoints" / "last.pt").exists() and (out / "checkpoints" / "best.pt").exists()
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["classes"] == ["circle", "square", "stripes"] and ck["epoch"] == 2
    assert ck["model_name"] == "alexnet" and ck["preprocessing"]["input_size"] == 227
    # weights_only loading works on the raw file too
    torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    s = json.loads((out / "summary.json").read_text())
    assert s == summary
    assert set(s) == {"best", "final", "epochs", "wall_seconds", "images_per_second"}
    assert set(s["best"]) == {"epoch", "val_top1_error", "val_top5_error"}
    assert s["epochs"] == 2 and s["final"]["epoch"] == 2
    assert (out / "plots" / "curves.png").stat().st_size > 1000


def test_resume_is_bit_identical(tiny_data, tmp_path):
    straight = tmp_path / "straight"
    train(tiny_cfg(tiny_data, straight, epochs=2))
    split = tmp_path / "split"
    train(tiny_cfg(tiny_data, split, epochs=1))
    train(tiny_cfg(tiny_data, split, epochs=2), resume="auto")
    assert_same_weights(
        weights(straight / "checkpoints" / "last.pt"), weights(split / "checkpoints" / "last.pt")
    )
    a = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_top1_error"] for r in a] == [r["val_top1_error"] for r in b]


def test_max_steps_mid_epoch_then_resume_is_bit_identical(tiny_data, tmp_path):
    straight = tmp_path / "straight"
    train(tiny_cfg(tiny_data, straight, epochs=1))
    part = tmp_path / "part"
    train(tiny_cfg(tiny_data, part, epochs=1, max_steps=4))
    ck = load_checkpoint(part / "checkpoints" / "last.pt")
    assert ck["step"] == 4 and ck["batch_in_epoch"] == 4
    train(tiny_cfg(tiny_data, part, epochs=1), resume="auto")
    assert_same_weights(
        weights(straight / "checkpoints" / "last.pt"), weights(part / "checkpoints" / "last.pt")
    )


def test_existing_run_is_refused_unless_resume_or_overwrite(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-steps",
        "1",
        "--workers",
        "0",
        "--quiet",
        "--device",
        "cpu",
        "--amp",
        "off",
    ]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_all_config_errors_reported_together(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "nope"),
            "--batch-size",
            "0",
            "--epochs",
            "-1",
            "--lr",
            "0",
            "--model",
            "vgg",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    for needle in ("--batch-size", "--epochs", "--lr", "--model 'vgg'", "no such directory"):
        assert needle in err, needle
    assert "Traceback" not in err


def test_unknown_preset_and_data_file(tmp_path, capsys):
    assert main(["train", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["train", "--data", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "is a file" in capsys.readouterr().err


def _cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "alexnet",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "0.001",
        "--device",
        "cpu",
        "--amp",
        "off",
        "--no-channels-last",
        "--seed",
        "5",
        "--init",
        "kaiming",
        "--quiet",
        *extra,
    ]


@pytest.mark.slow
def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(tiny_data, tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(_cli(tiny_data, straight, "--workers", "2"), check=True, timeout=600)
    out = tmp_path / "stopped"
    env = dict(os.environ, ALEXNET_FAULT_SIGNAL_AT_STEP=f"{int(signal.SIGTERM)}:2")
    r = subprocess.run(
        _cli(tiny_data, out, "--workers", "2"), env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 143, r.stderr
    assert "stopped by SIGTERM" in r.stderr and "--resume auto" in r.stderr
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 2 and ck["batch_in_epoch"] == 2
    subprocess.run(
        [*_cli(tiny_data, out, "--workers", "2"), "--resume", "auto"], check=True, timeout=600
    )
    assert_same_weights(
        weights(straight / "checkpoints" / "last.pt"), weights(out / "checkpoints" / "last.pt")
    )


def test_nan_loss_stops_with_the_step_and_keeps_last_good_checkpoint(
    tiny_data, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    train(tiny_cfg(tiny_data, out, epochs=1))
    last = out / "checkpoints" / "last.pt"
    before = last.read_bytes()
    monkeypatch.setenv("ALEXNET_FAULT_NAN_AT_STEP", "8")
    code = main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--resume",
            "auto",
            "--workers",
            "0",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "at step 8" in err and "untouched" in err
    assert last.read_bytes() == before
