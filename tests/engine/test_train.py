"""End-to-end training runs on tiny generated data: files, resume bit-equality, stops, NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from alexnet.cli import main
from alexnet.engine.checkpoint import load_checkpoint
from alexnet.engine.rundir import METRIC_KEYS
from alexnet.engine.train import train
from alexnet.outputs.runner import run_training


def weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_directory_contents(tiny_data, tmp_path, train_config):
    out = tmp_path / "run"
    summary = run_training(train_config(tiny_data, out))
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
    assert set(s) == {"best", "final", "epochs", "wall_seconds", "images_per_second", "weights"}
    assert s["weights"] == "raw"  # no --ema-decay: validation scored the weights themselves
    assert set(s["best"]) == {"epoch", "val_top1_error", "val_top5_error"}
    assert s["epochs"] == 2 and s["final"]["epoch"] == 2
    assert (out / "plots" / "curves.png").stat().st_size > 1000


def test_resume_is_bit_identical(tiny_data, tmp_path, train_config, capsys):
    straight = tmp_path / "straight"
    train(train_config(tiny_data, straight, epochs=2))
    split = tmp_path / "split"
    train(train_config(tiny_data, split, epochs=1))
    train(train_config(tiny_data, split, epochs=2), resume="auto")
    assert_same_weights(
        weights(straight / "checkpoints" / "last.pt"), weights(split / "checkpoints" / "last.pt")
    )
    a = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_top1_error"] for r in a] == [r["val_top1_error"] for r in b]
    before = (split / "checkpoints" / "last.pt").read_bytes()
    train(train_config(tiny_data, split, epochs=1), resume="auto")  # fewer than done
    assert "has trained 2 epochs and --epochs is 1: nothing to train" in capsys.readouterr().err
    assert (split / "checkpoints" / "last.pt").read_bytes() == before


def test_max_steps_mid_epoch_then_resume_is_bit_identical(tiny_data, tmp_path, train_config):
    straight = tmp_path / "straight"
    train(train_config(tiny_data, straight, epochs=1))
    part = tmp_path / "part"
    train(train_config(tiny_data, part, epochs=1, max_steps=4))
    ck = load_checkpoint(part / "checkpoints" / "last.pt")
    assert ck["step"] == 4 and ck["batch_in_epoch"] == 4
    train(train_config(tiny_data, part, epochs=1), resume="auto")
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
        "--width",
        "0.0625",  # tests/conftest.py's NARROW
        "--no-report",
    ]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume", "auto", "--init", "paper"]) == 0  # the values it has
    assert "ignoring" not in capsys.readouterr().err
    assert main([*args, "--resume", "auto", "--batch-size", "8", "--init", "caffe"]) == 0
    err = capsys.readouterr().err
    assert "resuming keeps the checkpoint's settings; ignoring batch_size, init" in err


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


def test_tarball_data_for_train_evaluate_and_visualize(tiny_data, tmp_path, monkeypatch):
    """--data takes a .tar.gz of an ImageFolder tree in train, evaluate and visualize."""
    import tarfile

    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_data, arcname="tiny")
    out = tmp_path / "run"
    common = ["--workers", "0", "--device", "cpu", "--amp", "off", "--quiet", "--width", "0.0625"]
    argv = ["train", "--data", str(archive), "--out", str(out), "--epochs", "1"]
    assert main([*argv, "--batch-size", "4", "--normalize", "channel", *common]) == 0
    ckpt = str(out / "checkpoints" / "last.pt")
    assert main(["evaluate", ckpt, "--data", str(archive), "--json", "--workers", "0"]) == 0
    png = tmp_path / "p.png"
    assert main(["visualize", "predictions", ckpt, "--data", str(archive), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000


def test_tensorboard_event_files(tiny_data, tmp_path, train_config):
    """With the tensorboard package installed, RUN/tb/ gets every epoch's metrics and lr."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_training(train_config(tiny_data, out, epochs=2))
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "val_top1_error", "val_top5_error", "lr"} <= tags
    assert [e.step for e in events.Scalars("val_top1_error")] == [1, 2]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("lr")] == pytest.approx([r["lr"] for r in records])


def test_augmentation_on_the_device_from_a_packed_store(tiny_data, tmp_path, train_config):
    """--augment-on device: the store's uint8 batches go through batch_augment in the loop
    (what a GPU run from a store does); the run is exact on resume too."""
    from alexnet.data import prepare_store

    store = tmp_path / "store"
    prepare_store(tiny_data, store, size=256)
    over = dict(augment_on="device", epochs=2)
    run_training(train_config(store, tmp_path / "a", **over))
    train(train_config(store, tmp_path / "b", **dict(over, epochs=1)))
    train(train_config(store, tmp_path / "b", **over), resume="auto")
    assert_same_weights(weights(tmp_path / "a" / "checkpoints" / "last.pt"),
                        weights(tmp_path / "b" / "checkpoints" / "last.pt"))  # fmt: skip
    with pytest.raises(Exception, match="packed store"):
        train(train_config(tiny_data, tmp_path / "c", augment_on="device"))
    run_training(train_config(store, tmp_path / "d", epochs=2))  # auto: the same path
    assert_same_weights(weights(tmp_path / "a" / "checkpoints" / "last.pt"),
                        weights(tmp_path / "d" / "checkpoints" / "last.pt"))  # fmt: skip
    small = tmp_path / "store64"
    prepare_store(tiny_data, small, size=64)
    with pytest.raises(Exception, match=r"64x64 images as stored, the run resizes to 256"):
        train(train_config(small, tmp_path / "e", augment_on="device"))
    assert not list((tmp_path / "e").rglob("*.pt"))


def test_default_workers_follow_where_augmentation_runs(monkeypatch):
    from alexnet.engine.setup import default_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(12)), raising=False)
    assert default_workers("loader", "cpu") == 8  # decoding: one per core, at most 8
    assert default_workers("device", "cpu") == 0  # a store's copy: no core taken from the step
    assert default_workers("device", "cuda") == 8
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_workers("loader", "cpu") == 1


def test_splits_with_different_classes_are_named(make_imagefolder, tmp_path, train_config):
    from alexnet.engine.distributed import DistInfo
    from alexnet.engine.setup import build_data
    from alexnet.errors import UserError

    root = make_imagefolder(tmp_path / "d", classes=("a", "b", "c"), train=1, val=1)
    (root / "val" / "c").rename(root / "val" / "d")
    cfg = train_config(root, tmp_path / "run")
    with pytest.raises(UserError) as e:
        build_data(cfg, DistInfo(), torch.device("cpu"), cfg.preprocessing())
    assert "different classes (only in train: c; only in val: d)" in str(e.value)
