"""What evaluate scores: the readable images only with --skip-bad, and the weights that
chose the checkpoint (the EMA where the run kept one), as training's validation did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from alexnet.cli import main
from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint, weights_checkpoint
from alexnet.engine.train import train
from alexnet.models import create_model

CLASSES = ["circle", "square", "stripes"]
NARROW = {"init": "kaiming", "width": 0.125}
CPU = ["--device", "cpu", "--amp", "off", "--channels-last", "off", "--workers", "0"]


def _evaluate_json(capsys, weights: Path, data: Path, *extra: str) -> dict:
    code = main(["evaluate", str(weights), "--data", str(data), "--json", *CPU, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_skip_bad_leaves_bad_images_out_of_the_count_and_the_metric(
    make_imagefolder, tmp_path, capsys
):
    torch.manual_seed(3)
    m = create_model("alexnet", num_classes=3, **NARROW)
    ck = tmp_path / "narrow.pt"
    save_checkpoint(weights_checkpoint("alexnet", NARROW, m.state_dict(), CLASSES, {}, {}), ck)
    mixed = make_imagefolder(tmp_path / "mixed", train=1, val=10, seed=4)  # 30 val images
    val = sorted((mixed / "val").rglob("*.png"))
    bad = val[::4] + [val[1]]  # 9 files: garbage or truncated
    for i, p in enumerate(bad):
        p.write_bytes(b"not a png" if i % 2 else p.read_bytes()[:60])
    clean = tmp_path / "clean"
    shutil.copytree(mixed, clean)
    for p in bad:
        (clean / p.relative_to(mixed)).unlink()
    readable = 30 - len(bad)
    skipped = _evaluate_json(capsys, ck, mixed, "--skip-bad", "--batch-size", "4")
    only_good = _evaluate_json(capsys, ck, clean, "--batch-size", "4")
    assert skipped["images"] == only_good["images"] == readable == 21
    assert skipped["skipped"] == len(bad)
    assert skipped["top1_error"] == only_good["top1_error"]
    assert skipped["top5_error"] == only_good["top5_error"]
    assert skipped["loss"] == pytest.approx(only_good["loss"], rel=1e-6)
    # without --skip-bad the first bad image stops the evaluation, naming it
    assert main(["evaluate", str(ck), "--data", str(mixed), *CPU]) == 1
    assert "alexnet: error:" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ema_run(tiny_data, tmp_path_factory, train_config) -> Path:
    out = tmp_path_factory.mktemp("ema")
    train(train_config(tiny_data, out, epochs=2, ema_decay=0.9))
    return out / "checkpoints" / "best.pt"


def test_evaluate_scores_the_ema_that_chose_best_pt(ema_run, tiny_data, capsys):
    recorded = load_checkpoint(ema_run)["metrics"]  # training's validation of that epoch
    ema = _evaluate_json(capsys, ema_run, tiny_data, "--batch-size", "4")
    assert ema["weights"] == "EMA (decay 0.9)"
    assert ema["loss"] == pytest.approx(recorded["val_loss"], rel=1e-5)
    assert ema["top1_error"] == pytest.approx(recorded["val_top1_error"])
    raw = _evaluate_json(capsys, ema_run, tiny_data, "--weights", "raw")
    assert raw["weights"].startswith("raw")
    assert raw["loss"] != pytest.approx(recorded["val_loss"], rel=1e-5)


def test_predict_and_features_say_which_weights(ema_run, tiny_data, tmp_path, capsys):
    image = next((tiny_data / "val" / "circle").glob("*.png"))
    assert main(["predict", str(ema_run), str(image), "--json", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["predictions"]
    assert captured.err.strip().splitlines() == ["weights: EMA (decay 0.9)"]
    out = tmp_path / "fc7.npz"
    argv = ["features", str(ema_run), "--data", str(tiny_data), "--layer", "fc7"]
    assert main([*argv, "--out", str(out), "--device", "cpu", "--workers", "0"]) == 0
    assert "weights: EMA (decay 0.9)" in capsys.readouterr().out.splitlines()
