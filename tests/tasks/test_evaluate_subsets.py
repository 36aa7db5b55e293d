"""What evaluate, features and visualize score: any split (train, val, test), a folder
holding some of a checkpoint's classes (an ImageNet checkpoint's by WordNet id or name),
and --eval-batches spread over the whole split rather than its first classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.data.classes import imagenet_names, imagenet_wnids, map_classes
from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
from alexnet.errors import UserError
from alexnet.models import create_model

CLASSES = ["circle", "square", "stripes"]
NARROW = {"init": "kaiming", "width": 0.125}
CPU = ["--device", "cpu", "--amp", "off", "--workers", "0"]


def _save(path: Path, classes: list[str], seed: int = 0, fc8_bias: dict | None = None) -> Path:
    torch.manual_seed(seed)
    m = create_model("alexnet", num_classes=len(classes), **NARROW)
    state = m.state_dict()
    for j, b in (fc8_bias or {}).items():  # a rigged fc8: class j wins every image
        state["classifier.fc8.bias"][j] = b
    save_checkpoint(weights_checkpoint("alexnet", NARROW, state, classes, {}, {}), path)
    return path


@pytest.fixture(scope="module")
def narrow(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("ck") / "narrow.pt", CLASSES)


@pytest.fixture(scope="module")
def with_test(tiny_data, tmp_path_factory) -> Path:
    """tiny_data plus a test/ split of 2 images per class."""
    root = tmp_path_factory.mktemp("splits") / "data"
    shutil.copytree(tiny_data, root)
    for c in CLASSES:
        shutil.copytree(tiny_data / "val" / c, root / "test" / c)
        for p in sorted((root / "test" / c).iterdir())[2:]:
            p.unlink()
    return root


def _json(capsys, *args: str) -> dict:
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_evaluate_features_and_visualize_take_the_test_split(narrow, with_test, tmp_path, capsys):
    out = _json(capsys, "evaluate", str(narrow), "--data", str(with_test), "--split", "test", *CPU)
    assert out["images"] == 6 and out["classes_found"] == 3
    assert _json(capsys, "evaluate", str(narrow), "--data", str(with_test), *CPU)["images"] == 12
    train = ["--split", "train", *CPU]
    assert _json(capsys, "evaluate", str(narrow), "--data", str(with_test), *train)["images"] == 24
    npz = tmp_path / "f.npz"
    args = ["features", str(narrow), "--data", str(with_test), "--layer", "fc7", "--out", str(npz)]
    assert main([*args, "--split", "test", *CPU]) == 0
    assert np.load(npz)["paths"].tolist()[:2] == ["circle/000.png", "circle/001.png"]
    assert len(np.load(npz)["labels"]) == 6
    png = tmp_path / "p.png"
    vis = ["visualize", "predictions", str(narrow), "--data", str(with_test), "--out", str(png)]
    assert main([*vis, "--split", "test", "--count", "6", *CPU]) == 0
    assert "6 images" in capsys.readouterr().out and png.exists()


def test_a_missing_test_split_is_named(narrow, tiny_data, capsys):
    args = ["evaluate", str(narrow), "--data", str(tiny_data), "--split", "test", *CPU]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "test: no such directory" in err


@pytest.fixture(scope="module")
def imagenet_ck(tmp_path_factory) -> Path:
    """A narrow 1000-way checkpoint named by WordNet id whose fc8 picks tench (output 0)."""
    path = tmp_path_factory.mktemp("in1k") / "in1k.pt"
    return _save(path, imagenet_wnids(), seed=1, fc8_bias={0: 8.0})


def test_imagenet_checkpoint_scores_a_subset_over_all_its_outputs(
    imagenet_ck, tiny_data, tmp_path, capsys
):
    """Folders n01440764 (tench, output 0), n01443537 (goldfish, 1) and great_white_shark
    (2): sorted, the data's class 0 is the shark; the scores must follow the checkpoint's
    outputs (every image is called tench: 4 of 12 right), the loss the probability of
    each image's own output among all 1000."""
    from alexnet.data import build_dataset
    from alexnet.tasks.inference import eval_transform_for, load_for_inference

    val = tmp_path / "sub" / "val"
    for src, dst in zip(CLASSES, ("n01440764", "n01443537", "great_white_shark"), strict=True):
        shutil.copytree(tiny_data / "val" / src, val / dst)
    code = main(["evaluate", str(imagenet_ck), "--data", str(tmp_path / "sub"), *CPU])
    text = capsys.readouterr().out
    assert code == 0
    assert "3 of the checkpoint's 1000 classes found in " in text
    assert "sub/val (by WordNet id and name)" in text
    out = _json(capsys, "evaluate", str(imagenet_ck), "--data", str(tmp_path / "sub"), *CPU)
    assert out["top1_error"] == pytest.approx(8 / 12)
    # independent reference: the model on each image, the target found by hand
    setup = load_for_inference([str(imagenet_ck)], device="cpu", amp="off", channels_last="off")
    ds = build_dataset(str(tmp_path / "sub"), "val", eval_transform_for(setup))
    assert ds.classes == ["great_white_shark", "n01440764", "n01443537"]
    x = torch.stack([ds[i][0] for i in range(len(ds))]).double()
    own = torch.tensor([[2, 0, 1][t] for t in ds.targets])
    model = setup.modules[0].double()
    with torch.no_grad():
        logp = model(x).log_softmax(1)  # (12, 1000)
    assert logp.shape[1] == 1000
    nll = -logp.gather(1, own[:, None]).mean().item()
    assert out["loss"] == pytest.approx(nll, rel=1e-4)


def test_classes_it_cannot_map_are_named_in_one_line(
    imagenet_ck, narrow, tiny_data, tmp_path, capsys
):
    val = tmp_path / "mixed" / "val"
    shutil.copytree(tiny_data / "val" / "circle", val / "n01440764")
    shutil.copytree(tiny_data / "val" / "square", val / "not_a_synset")
    assert main(["evaluate", str(imagenet_ck), "--data", str(tmp_path / "mixed"), *CPU]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "1 of its 2 classes not among the checkpoint's 1000: not_a_synset" in err
    assert main(["evaluate", str(narrow), "--data", str(tmp_path / "mixed"), *CPU]) == 1
    err = capsys.readouterr().err
    assert "n01440764, not_a_synset" in err and "its classes: circle, square, stripes" in err


def test_map_classes_by_name_id_and_suffix():
    names, wnids = imagenet_names(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000 and wnids == sorted(wnids)
    assert names[0] == "tench" and wnids[0] == "n01440764"
    m = map_classes(names, ["tench", "Great_White_Shark", "goldfish (n01443537)"], "d")
    assert m.indices == [0, 2, 1] and m.by == "WordNet id and name"
    assert map_classes(wnids, wnids, "d").identity
    assert map_classes(CLASSES, ["stripes", "circle"], "d").indices == [2, 0]  # any subset
    with pytest.raises(UserError, match="crane: more than one ImageNet class"):
        map_classes(wnids, ["crane"], "d")
    with pytest.raises(UserError, match="n01440764, tench are the same class"):
        map_classes(wnids, ["n01440764", "tench"], "d")
    unnamed = [str(i) for i in range(3)]
    assert map_classes(unnamed, CLASSES, "d").by == "position"


def test_eval_batches_spread_over_every_class(narrow, tiny_data, tmp_path, capsys):
    """12 images sorted by class, 4 per class: 1 batch of 3 is one image of each class
    (the first batch would be three circles)."""
    cm = tmp_path / "cm.json"
    args = ["evaluate", str(narrow), "--data", str(tiny_data), "--batch-size", "3", *CPU]
    out = _json(capsys, *args, "--eval-batches", "1", "--confusion", str(cm))
    assert out["images"] == 3
    rows = json.loads(cm.read_text())["confusion"]
    assert [sum(r) for r in rows] == [1, 1, 1]


def test_trainings_eval_batches_spread_over_every_class(tiny_data, train_config, tmp_path):
    from alexnet.engine.distributed import DistInfo
    from alexnet.engine.setup import build_data

    cfg = train_config(tiny_data, tmp_path / "run", batch_size=3, eval_batches=1)
    bundle = build_data(cfg, DistInfo(), torch.device("cpu"), cfg.preprocessing())
    targets = [t for _, y in bundle.val_loader for t in y.tolist()]
    assert targets == [0, 1, 2]
