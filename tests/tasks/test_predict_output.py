"""predict over files and folders into CSV / JSON files written as it goes (a killed run
keeps its rows), and features --skip-bad leaving unreadable images out."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
from alexnet.models import create_model

CLASSES = ["circle", "square", "stripes"]
NARROW = {"init": "kaiming", "width": 0.125}
CPU = ["--device", "cpu", "--amp", "off", "--channels-last", "off"]
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def narrow(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = create_model("alexnet", num_classes=3, **NARROW)
    p = tmp_path_factory.mktemp("ck") / "narrow.pt"
    save_checkpoint(weights_checkpoint("alexnet", NARROW, m.state_dict(), CLASSES, {}, {}), p)
    return p


@pytest.fixture
def photos(tiny_data, tmp_path) -> Path:
    """A folder of 12 images in sub-folders, one file that is not an image and a README."""
    root = tmp_path / "photos"
    shutil.copytree(tiny_data / "val", root)
    (root / "square" / "broken.png").write_text("not a png")
    (root / "README.txt").write_text("ignored: not an image name")
    return root


def _reference(narrow: Path, paths: list[str]) -> torch.Tensor:
    """The model's softmax on each image, computed here: (N, 3)."""
    from alexnet.data import load_image
    from alexnet.tasks.inference import eval_transform_for, load_for_inference

    setup = load_for_inference([str(narrow)], device="cpu", amp="off", channels_last="off")
    tf = eval_transform_for(setup)
    x = torch.stack([tf(load_image(p)) for p in paths])
    with torch.no_grad():
        return setup.modules[0](x).softmax(1)


def test_predict_a_folder_into_csv(narrow, photos, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    args = ["predict", str(narrow), str(photos), "--topk", "2", "--batch-size", "5"]
    assert main([*args, "--output", str(out), *CPU]) == 1  # one unreadable file
    captured = capsys.readouterr()
    assert "wrote 13 rows to" in captured.out and "1 of 13 image(s)" in captured.err
    rows = list(csv.reader(out.open()))
    header = ["image", "class_1", "probability_1", "class_2", "probability_2", "error"]
    assert rows[0] == header and len(rows) == 14
    images = [r[0] for r in rows[1:]]
    assert images == sorted(images) and images[0].endswith("circle/000.png")
    bad = [r for r in rows[1:] if r[-1]]
    assert len(bad) == 1 and bad[0][0].endswith("square/broken.png") and bad[0][1] == ""
    assert "broken.png" in bad[0][-1]
    good = [r for r in rows[1:] if not r[-1]]
    probs = _reference(narrow, [r[0] for r in good])
    for r, p in zip(good, probs, strict=True):
        top = p.topk(2)
        assert [r[1], r[3]] == [CLASSES[int(j)] for j in top.indices]
        assert [float(r[2]), float(r[4])] == pytest.approx(top.values.tolist(), abs=2e-6)


def test_predict_files_and_folders_into_json_and_jsonl(narrow, photos, tmp_path, capsys):
    one = photos / "stripes" / "003.png"
    for name in ("p.json", "p.jsonl"):
        out = tmp_path / name
        args = ["predict", str(narrow), str(one), str(photos / "circle"), "--topk", "1"]
        assert main([*args, "--output", str(out), *CPU]) == 0
        text = out.read_text()
        rows = (
            json.loads(text)
            if name.endswith(".json")
            else [json.loads(x) for x in text.splitlines()]
        )
        assert [Path(r["image"]).name for r in rows] == [
            "003.png",
            *[f"{i:03d}.png" for i in range(4)],
        ]
        assert all(len(r["predictions"]) == 1 for r in rows)
    capsys.readouterr()


def test_predict_refuses_an_output_it_cannot_write_before_loading(narrow, photos, tmp_path, capsys):
    for out, needle in (
        (tmp_path / "p.txt", "must end in .csv, .json, .jsonl"),
        (tmp_path / "absent" / "p.csv", "no such directory"),
    ):
        assert main(["predict", str(narrow), str(photos), "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(narrow), str(empty)]) == 2
    assert "no image files under" in capsys.readouterr().err


def test_a_killed_predict_leaves_the_rows_done_so_far(narrow, photos, tmp_path):
    """The third image is a FIFO no one writes: the run blocks there, after the first two
    rows were written and flushed, and is killed."""
    fifo = tmp_path / "stuck.png"
    os.mkfifo(fifo)
    out = tmp_path / "partial.csv"
    a, b = photos / "circle" / "000.png", photos / "square" / "001.png"
    cmd = [sys.executable, "-m", "alexnet", "predict", str(narrow), str(a), str(b), str(fifo)]
    cmd += [str(photos / "stripes"), "--batch-size", "1", "--output", str(out), *CPU]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count("\n") >= 3:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.3)
        assert proc.poll() is None  # still blocked on the FIFO
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    rows = list(csv.reader(out.open()))
    assert len(rows) == 3 and rows[0][0] == "image" and len(rows[0]) == 12
    assert [r[0] for r in rows[1:]] == [str(a), str(b)]
    assert all(len(r) == 12 and r[1] in CLASSES for r in rows[1:])


def test_features_skip_bad_leaves_unreadable_images_out(narrow, tiny_data, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_data, mixed)
    bad = [mixed / "val" / "circle" / "001.png", mixed / "val" / "stripes" / "003.png"]
    for p in bad:
        p.write_bytes(p.read_bytes()[:60])  # truncated
    clean = tmp_path / "clean"
    shutil.copytree(mixed, clean)
    for p in bad:
        (clean / p.relative_to(mixed)).unlink()
    args = ["features", str(narrow), "--layer", "fc6", "--workers", "0", "--batch-size", "4"]
    assert main([*args, "--data", str(mixed), "--out", str(tmp_path / "m.npz"), "--skip-bad"]) == 0
    text = capsys.readouterr().out
    assert "skipped 2 unreadable: " in text and "circle/001.png" in text
    assert "wrote" in text and "10 images x 512 (fc6)" in text
    assert main([*args, "--data", str(clean), "--out", str(tmp_path / "c.npz")]) == 0
    m, c = np.load(tmp_path / "m.npz"), np.load(tmp_path / "c.npz")
    for key in ("labels", "paths", "classes", "layer"):
        assert m[key].tolist() == c[key].tolist(), key
    np.testing.assert_allclose(m["features"], c["features"], rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["c.npz", "m.npz"]
    # without --skip-bad the first unreadable image stops the run, and nothing is written
    assert main([*args, "--data", str(mixed), "--out", str(tmp_path / "x.npz")]) == 1
    assert "001.png" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()
