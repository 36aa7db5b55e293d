"""`alexnet visualize filters|predictions|neighbors` and `alexnet report` from the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from alexnet.cli import main


def _helpers():
    path = Path(__file__).resolve().parents[1] / "fake_run.py"
    spec = importlib.util.spec_from_file_location("alexnet_tests_fake_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(data dir, paper checkpoint (width 1/8), owt checkpoint at full size, run dir (owt at
    width 1/8), paper checkpoint at full size) with random weights; the two full-size ones
    for Figure 3's layouts, with random convolutions only."""
    h = _helpers()
    root = tmp_path_factory.mktemp("figures")
    data, classes = h.make_demo(root / "demo")
    paper = h.save_random_checkpoint(root / "paper.pt", "alexnet", classes)
    full = {"width": 1.0, "convolutions_only": True}
    owt = h.save_random_checkpoint(root / "owt.pt", "alexnet_owt", classes, **full)
    run = h.make_fake_run(root / "run", data, classes, model_name="alexnet_owt")
    paper_full = h.save_random_checkpoint(root / "full.pt", "alexnet", classes, **full)
    return data, paper, owt, run, paper_full


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


@pytest.mark.parametrize(("which", "towers"), [(4, 2), (2, 1)], ids=["paper", "owt"])
def test_visualize_filters(demo, tmp_path, capsys, which, towers):
    """Figure 3 of the full-size network: 96 kernels in two towers; torchvision's 64."""
    out = tmp_path / "filters.png"
    assert main(["visualize", "filters", str(demo[which]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if "colour specificity" in ln]
    assert len(lines) == towers
    assert ("96 kernels 3x11x11" if towers == 2 else "64 kernels 3x11x11") in text
    scores = [float(ln.split("(mean chroma)")[1].split()[0]) for ln in lines]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert _size(out)[0] == 1000


def test_visualize_predictions(demo, tmp_path, capsys):
    data, paper, *_ = demo
    out = tmp_path / "preds.png"
    rc = main(
        [
            "visualize",
            "predictions",
            str(paper),
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--count",
            "4",
            "--batch-size",
            "3",
        ]
    )
    assert rc == 0
    assert "4 images: correct label top-1 in" in capsys.readouterr().out
    assert _size(out) == (1200, 440)  # 4 columns, one row


def test_visualize_neighbors(demo, tmp_path, capsys):
    data, _, _, run, _ = demo
    owt = run / "checkpoints" / "best.pt"  # at width 1/8: 512 fc7 features
    out = tmp_path / "nn.png"
    rc = main(
        [
            "visualize",
            "neighbors",
            str(owt),
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--queries",
            "2",
            "--k",
            "3",
            "--max-train",
            "5",
        ]
    )
    assert rc == 0
    assert "2 queries against 5 of 12 training images" in capsys.readouterr().out
    assert _size(out) == (640, 380)  # (1 + 3) x 2 tiles


def test_visualize_errors_are_one_line(demo, tmp_path, capsys):
    data, paper, *_ = demo
    assert main(["visualize", "filters", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alexnet: error: checkpoint") and err.count("\n") == 1
    other = _helpers().save_random_checkpoint(tmp_path / "x.pt", "alexnet", ["a", "b"])
    assert main(["visualize", "predictions", str(other), "--data", str(data)]) == 1
    assert "classes" in capsys.readouterr().err
    assert main(["visualize", "predictions", str(paper), "--data", str(data), "--count", "0"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["visualize", "predictions", str(paper)])  # --data is required
    assert e.value.code == 2


def test_report_command(demo, tmp_path, capsys):
    run = demo[3]
    out = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(out), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert 'id="metrics"' in out.read_text()
    assert main(["report", str(tmp_path / "none")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_checkpoint_without_class_names_takes_the_datas(demo, tmp_path, capsys):
    from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint

    data, paper, *_ = demo
    state = load_checkpoint(paper)
    state["classes"] = []  # e.g. imported weights: only the number of outputs is known
    unnamed = save_checkpoint(state, tmp_path / "unnamed.pt")
    out = tmp_path / "p.png"
    args = ["visualize", "predictions", str(unnamed), "--data", str(data), "--out", str(out)]
    assert main([*args, "--device", "cpu", "--count", "2"]) == 0
    assert out.exists()
