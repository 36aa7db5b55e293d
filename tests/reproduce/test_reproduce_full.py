"""`alexnet reproduce cifar10 --full` at a tiny scale on the CPU: the packed store made once
and reused, the plateau schedule's three /10 drops recorded per epoch, the stop at the
plateau after them or at --max-epochs, centre and 10-crop test errors, wall time and img/s.

The runs train the width-1/16 network on 4 images per class; ``min_improvement: 1.0`` makes
every epoch after the first one "without improvement", so the schedule's decisions are
known in advance whatever the tiny network learns: with --patience 0, /10 after epochs 2,
3 and 4, and the stop at the plateau after epoch 5.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from alexnet.cli import main

NARROW = 0.0625  # tests/conftest.py's
TINY = {
    "model_kwargs": {"width": NARROW},
    "batch_size": 4,
    "device": "cpu",
    "amp": "off",
    "channels_last": "off",
    "workers": 0,
    "min_improvement": 1.0,  # no epoch after the first improves: the drops come on time
}


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory, make_imagefolder):
    """A CIFAR-like folder (train/ and test/, 3 classes) and a --config of the tiny run."""
    root = tmp_path_factory.mktemp("full")
    src = make_imagefolder(root / "cifar", train=6, val=3)
    (src / "val").rename(src / "test")  # CIFAR-10's tarball names it so
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    return src, config


def test_full_runs_the_three_drops_and_stops_at_the_plateau(run_cli, tiny_cifar, tmp_path):
    src, config = tiny_cifar
    out = tmp_path / "out"
    args = ["--data", str(src), "--out", str(out), "--train-per-class", "4"]
    args += ["--test-per-class", "2", "--max-epochs", "8", "--patience", "0"]
    args += ["--workers", "0", "--config", str(config)]
    r = run_cli("reproduce", "cifar10", "--full", *args)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "result.json").read_text())
    assert [e["epoch"] for e in res["epochs"]] == [1, 2, 3, 4, 5]
    assert res["drops"] == [2, 3, 4] and res["stopped"] == "plateau"
    assert [e["lr_divided"] for e in res["epochs"]] == [False, True, True, True, False]
    assert [e["lr"] for e in res["epochs"]] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-4, 1e-5])
    for e in res["epochs"]:
        assert 0 <= e["val_top1_error"] <= 1 and e["images_per_second"] > 0
    assert res["train_images"] == 12 and res["test_images"] == 6
    for crop in ("centre", "ten_crop"):
        assert 0 <= res[f"{crop}_top1_error"] <= 1 and res[f"{crop}_images_per_second"] > 0
    assert res["train_images_per_second"] > 0 and res["wall_seconds"] > 0
    assert res["wall_seconds"] >= res["train_seconds"] > 0
    # the terminal: the trainer's line per epoch, then the tables and the wall time
    assert r.stderr.count("(lr divided)") == 3 and "epoch 5: " in r.stderr
    assert r.stdout.count("(then /10)") == 3 and "| 10 crops |" in r.stdout
    assert "Wall time" in r.stdout and "img/s" in r.stdout
    assert (out / "result.md").read_text().strip() in r.stdout
    meta = json.loads((out / "store-256" / "meta.json").read_text())
    assert meta["size"] == 256 and meta["splits"]["train"]["count"] == 12
    ck = torch.load(out / "run" / "checkpoints" / "last.pt", weights_only=True, mmap=True)
    assert ck["model_kwargs"]["width"] == NARROW and ck["model_kwargs"]["init"] == "paper"
    assert ck["config"]["patience"] == 0 and ck["config"]["data"] == str(out / "store-256")

    # Again: the store is reused, the finished run trains nothing more, the test repeats.
    meta_mtime = (out / "store-256" / "meta.json").stat().st_mtime_ns
    r2 = run_cli("reproduce", "cifar10", "--full", *args)
    assert r2.returncode == 0, r2.stderr
    assert "(reused)" in r2.stdout and "already ended" in r2.stdout
    assert (out / "store-256" / "meta.json").stat().st_mtime_ns == meta_mtime
    again = json.loads((out / "result.json").read_text())
    assert again["epochs"] == res["epochs"] and again["drops"] == [2, 3, 4]
    assert again["centre_top1_error"] == res["centre_top1_error"] and again["continued"]


def test_max_epochs_caps_the_run_and_a_last_epoch_drop_is_recorded(tiny_cifar, tmp_path):
    from alexnet.reproduce.full import FullConfig, run_full

    src, _ = tiny_cifar
    cfg = FullConfig(
        data=str(src),
        out=str(tmp_path / "out"),
        max_epochs=3,
        patience=0,
        train_per_class=3,
        test_per_class=1,
        workers=0,
        overrides=dict(TINY),
    )
    lines = []
    res = run_full(cfg, log=lines.append)
    assert res["stopped"] == "max_epochs" and len(res["epochs"]) == 3
    assert res["drops"] == [2, 3]  # the one after epoch 3 shows in no later lr
    assert res["epochs"][-1]["lr_divided"] and res["epochs"][-1]["lr"] == pytest.approx(1e-3)
    assert "--max-epochs 3" in lines[-1] and res["train_images"] == 9


def _fails(args: list[str], capsys) -> str:
    assert main(["reproduce", "cifar10", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("alexnet: error: "), err
    return err


def test_bad_options_are_one_line_usage_errors(tiny_cifar, tmp_path, capsys):
    src, _ = tiny_cifar
    out = tmp_path / "out"
    base = ["--data", str(src), "--out", str(out)]
    err = _fails([*base, "--full", "--epochs", "3", "--models", "2"], capsys)
    assert "--epochs is not an option of --full" in err and "--models" in err
    err = _fails([*base, "--max-epochs", "5", "--store", str(tmp_path)], capsys)
    assert "--max-epochs is an option of --full" in err and "--store" in err
    err = _fails([*base, "--full", "--max-epochs", "0", "--patience", "-1"], capsys)
    assert "--max-epochs must be >= 1" in err and "--patience must be >= 0" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"batch_size": 0, "lr": -1}))
    err = _fails([*base, "--full", "--config", str(bad)], capsys)
    assert "--batch-size" in err and "--lr" in err
    step = tmp_path / "step.yaml"
    step.write_text(yaml.safe_dump({"schedule": "step"}))
    assert "plateau schedule" in _fails([*base, "--full", "--config", str(step)], capsys)
    err = _fails([*base, "--full", "--config", str(tmp_path / "none.yaml")], capsys)
    assert "none.yaml" in err
    assert not out.exists()  # nothing was made before the options were checked


def test_a_store_of_other_images_is_refused_not_replaced(tiny_cifar, tmp_path, capsys):
    """--store names the user's store: one that holds other images stays as it is."""
    from alexnet.data import prepare_store

    src, config = tiny_cifar
    store = tmp_path / "store"
    prepare_store(src, store, size=256, stats=False)  # every image, not the sampled 2 per class
    before = (store / "meta.json").read_text()
    args = ["reproduce", "cifar10", "--full", "--data", str(src), "--out", str(tmp_path / "o")]
    args += ["--train-per-class", "2", "--store", str(store), "--config", str(config)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train images are not those of" in err
    assert (store / "meta.json").read_text() == before
