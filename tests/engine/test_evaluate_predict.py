"""evaluate (centre, 10-crop, ensembles, --json) and predict (formats, bad files)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.engine.train import train
from alexnet.engine.validate import hit_counts
from alexnet.tasks.evaluate import evaluate_checkpoints


@pytest.fixture(scope="module")
def two_runs(tiny_data, tmp_path_factory, train_config) -> tuple[Path, Path]:
    outs = []
    for seed in (1, 2):
        out = tmp_path_factory.mktemp(f"run{seed}")
        train(train_config(tiny_data, out, epochs=1, seed=seed))
        outs.append(out / "checkpoints" / "last.pt")
    return outs[0], outs[1]


def test_hit_counts_match_definition():
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    target = torch.tensor([2, 0, 1])
    assert hit_counts(probs, target, (1, 2, 5)).tolist() == [1, 3, 3]


def test_evaluate_json_centre_and_ten_crop(two_runs, tiny_data, capsys):
    ck = str(two_runs[0])
    for extra, ten in (([], False), (["--ten-crop"], True)):
        assert (
            main(["evaluate", ck, "--data", str(tiny_data), "--json", "--workers", "0", *extra])
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        keys = {"top1_error", "top5_error", "loss", "images", "skipped", "ten_crop", "weights"}
        keys |= {"classes_found"}  # 3 of the checkpoint's 3
        assert out["classes_found"] == 3
        assert set(out) == keys
        assert out["images"] == 12 and out["ten_crop"] is ten and out["skipped"] == 0
        assert out["weights"] is None  # a run without --ema-decay: one set of weights
        assert 0 <= out["top1_error"] <= 1 and out["top5_error"] == 0.0  # 3 classes


@pytest.mark.parametrize("trained", ["off", "bf16", None])
def test_auto_precision_follows_a_float32_run(two_runs, tmp_path, monkeypatch, trained):
    """``--amp auto`` evaluates a checkpoint trained with ``--amp off`` (--preset paper,
    caffe) in float32 even where the device would choose bf16; other runs get the
    device's choice."""
    from alexnet import runtime
    from alexnet.tasks.inference import load_for_inference

    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)  # bf16 by default
    state = torch.load(two_runs[0], map_location="cpu", weights_only=False)
    state["config"]["amp"] = trained
    path = tmp_path / "ck.pt"
    torch.save(state, path)
    setup = load_for_inference([str(path)], device="cpu", channels_last="off")
    assert setup.amp == ("off" if trained == "off" else "bf16")
    assert load_for_inference([str(path)], device="cpu", amp="bf16").amp == "bf16"


def test_evaluate_equals_a_hand_computation(two_runs, tiny_data):
    from alexnet.data import build_dataset
    from alexnet.tasks.inference import eval_transform_for, load_for_inference

    setup = load_for_inference([str(two_runs[0])], device="cpu", amp="off", channels_last="off")
    ds = build_dataset(str(tiny_data), "val", eval_transform_for(setup))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        pred = setup.modules[0](x).argmax(1)
    expected = 1 - (pred == y).float().mean().item()
    res = evaluate_checkpoints(
        [str(two_runs[0])], str(tiny_data), workers=0, device="cpu", amp="off", channels_last="off"
    )
    assert res.top1_error == pytest.approx(expected)


def test_ensemble_averages_softmax(two_runs, tiny_data):
    from alexnet.data import build_dataset
    from alexnet.tasks.inference import eval_transform_for, load_for_inference

    paths = [str(p) for p in two_runs]
    setup = load_for_inference(paths, device="cpu", amp="off", channels_last="off")
    ds = build_dataset(str(tiny_data), "val", eval_transform_for(setup))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        p = sum(m(x).softmax(1) for m in setup.modules) / 2
    expected_nll = -(p.gather(1, y[:, None]).log().mean().item())
    res = evaluate_checkpoints(
        paths, str(tiny_data), workers=0, device="cpu", amp="off", channels_last="off"
    )
    assert res.loss == pytest.approx(expected_nll, rel=1e-5)
    assert res.top1_error == pytest.approx(1 - (p.argmax(1) == y).float().mean().item())


def test_evaluate_refuses_data_with_other_classes(two_runs, tmp_path, capsys, make_imagefolder):
    other = make_imagefolder(tmp_path / "other", classes=("a", "b"), train=1, val=1)
    assert main(["evaluate", str(two_runs[0]), "--data", str(other), "--workers", "0"]) == 1
    assert "classes" in capsys.readouterr().err


def test_predict_formats_and_bad_files(two_runs, tmp_path, capsys):
    rng = np.random.default_rng(0)
    rgb = tmp_path / "a.jpg"
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(rgb)
    grey = tmp_path / "g.png"
    Image.fromarray(rng.integers(0, 255, (50, 50), dtype=np.uint8), "L").save(grey)
    rgba = tmp_path / "t.png"
    Image.fromarray(rng.integers(0, 255, (40, 30, 4), dtype=np.uint8), "RGBA").save(rgba)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    missing = tmp_path / "missing.png"
    code = main(
        [
            "predict",
            str(two_runs[0]),
            str(rgb),
            str(grey),
            str(bad),
            str(rgba),
            str(missing),
            "--topk",
            "2",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [Path(r["image"]).name for r in out] == [
        "a.jpg",
        "g.png",
        "bad.jpg",
        "t.png",
        "missing.png",
    ]
    for r in (out[0], out[1], out[3]):
        assert len(r["predictions"]) == 2
        assert {p["class"] for p in r["predictions"]} <= {"circle", "square", "stripes"}
        assert sum(p["probability"] for p in r["predictions"]) <= 1.0 + 1e-6
    assert "bad.jpg" in out[2]["error"] and "missing.png" in out[4]["error"]


def test_checkpoint_with_pickle_payload_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": Payload(), "model_name": "alexnet"}, f)
    torch.save({"model": {}, "model_name": "alexnet", "x": Payload()}, tmp_path / "evil2.pt")
    for p in (evil, tmp_path / "evil2.pt"):
        assert main(["predict", str(p), str(p)]) == 1
        err = capsys.readouterr().err
        assert "refused" in err or "corrupt" in err
        assert "Traceback" not in err
    assert not marker.exists()


def test_wrong_model_or_class_count_is_named(two_runs, tmp_path, capsys):
    from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint

    st = load_checkpoint(two_runs[0])
    st["model_name"] = "alexnet_owt"
    save_checkpoint(st, tmp_path / "other_model.pt")
    assert main(["predict", str(tmp_path / "other_model.pt"), "x.png"]) == 1
    assert "alexnet_owt" in capsys.readouterr().err
    st = load_checkpoint(two_runs[0])
    st["classes"] = ["a", "b", "c", "d"]
    save_checkpoint(st, tmp_path / "other_classes.pt")
    assert main(["predict", str(tmp_path / "other_classes.pt"), "x.png"]) == 1
    assert "different number of classes" in capsys.readouterr().err
