"""reproduce relu-vs-tanh (Figure 1) on a tiny synthetic CIFAR-like set."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.errors import UserError
from alexnet.reproduce.cifar import load_cifar_split
from alexnet.reproduce.config import Figure1Config
from alexnet.reproduce.relu_vs_tanh import Figure1Net, Run, run_relu_vs_tanh

CLASSES = ["ant", "bee", "cow"]


def _jpeg(img: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_images(root, per_class: int = 12):
    """32x32 JPEGs whose colour says the class (learnable in a few steps)."""
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(CLASSES):
        d = root / "cifar10" / "train" / name
        d.mkdir(parents=True)
        for i in range(per_class):
            img = torch.randint(0, 60, (3, 32, 32), generator=g, dtype=torch.uint8)
            img[c] += 180
            (d / f"{i:04d}.jpg").write_bytes(_jpeg(img))
    test = root / "cifar10" / "test" / CLASSES[0]
    test.mkdir(parents=True)
    (test / "0000.jpg").write_bytes((d / "0000.jpg").read_bytes())


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    _write_images(root)
    tarball = root / "tiny-cifar.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root / "cifar10", arcname="cifar10")
    return root, tarball


def test_loads_tarball_and_folder_alike(tiny_cifar):
    root, tarball = tiny_cifar
    a, b = load_cifar_split(tarball), load_cifar_split(root)
    assert a.images.shape == (36, 3, 32, 32) and a.images.dtype == torch.uint8
    assert a.classes == b.classes == CLASSES
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.labels.tolist() == [0] * 12 + [1] * 12 + [2] * 12  # test/ images left out


def test_rejects_non_cifar_sizes(tmp_path):
    d = tmp_path / "train" / "x"
    d.mkdir(parents=True)
    img = torch.zeros(3, 64, 64, dtype=torch.uint8)
    (d / "a.jpg").write_bytes(_jpeg(img))
    with pytest.raises(UserError, match="32x32"):
        load_cifar_split(tmp_path)


def test_network_is_four_weight_layers():
    net = Figure1Net("tanh")
    weights = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weights) == 4
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert any(isinstance(m, torch.nn.Tanh) for m in net.modules())


def test_epochs_to_target_interpolates():
    run = Run("relu", 0.1, epoch_errors=[0.6, 0.3, 0.2])
    assert run.epochs_to(0.25) == pytest.approx(2.5)  # 0.3 at epoch 2, 0.2 at epoch 3
    assert run.epochs_to(0.1) is None
    # epoch 0 counts as chance (90% error): 0.9 -> 0.0 during epoch 1 crosses 25% at 0.72
    assert Run("relu", 0.1, epoch_errors=[0.0]).epochs_to(0.25) == pytest.approx(0.65 / 0.9)


def test_summary_says_which_net_missed_the_target_and_in_how_many_epochs():
    from alexnet.reproduce.config import Figure1Config
    from alexnet.reproduce.relu_vs_tanh import summarize

    relu = Run("relu", 0.001, epoch_errors=[0.8, 0.6, 0.5])
    tanh = Run("tanh", 0.01, epoch_errors=[0.6, 0.3, 0.2])
    text = summarize(Figure1Config("cifar.tar.gz", "out"), relu, tanh, {}, 60.0, 100)["summary"]
    assert "ReLU did not reach 25% in 3 epochs at lr 0.001" in text
    assert "tanh 2.50 epochs at lr 0.01" in text and "never" not in text


def test_reproduce_writes_figure_and_result(tiny_cifar, tmp_path, capsys):
    _, tarball = tiny_cifar
    out = tmp_path / "fig1"
    args = ["reproduce", "relu-vs-tanh", "--data", str(tarball), "--out", str(out)]
    args += ["--budget-minutes", "5", "--max-epochs", "4", "--batch-size", "8", "--threads", "1"]
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert (out / "figure1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(result["runs"]) == {"relu", "tanh"}
    for unit in ("relu", "tanh"):
        run = result["runs"][unit]
        assert 1 <= len(run["epoch_errors"]) <= 4
        assert run["stopped"] in {"target", "max_epochs", "budget"}
    assert isinstance(result["budget_hit"], bool) and result["wall_seconds"] > 0
    assert result["config"]["batch_size"] == 8 and result["train_images"] == 36
    assert "tanh/ReLU" in capsys.readouterr().out or result["factor"] is None


def test_sweep_picks_a_listed_rate(tiny_cifar, tmp_path):
    root, _ = tiny_cifar
    cfg = Figure1Config(
        data=str(root),
        out=str(tmp_path),
        budget_minutes=5,
        max_epochs=2,
        threads=1,
        batch_size=8,
        setup="pytorch",
        sweep=True,
        sweep_lrs=(0.001, 0.01),
        sweep_epochs=1.0,
    )
    result = run_relu_vs_tanh(cfg, log=lambda s: None)
    assert set(result["sweep"]) == {"relu", "tanh"}
    for unit in ("relu", "tanh"):
        assert result["runs"][unit]["lr"] in (0.001, 0.01)


def test_bad_options_are_one_line_errors(tiny_cifar, tmp_path, capsys):
    _, tarball = tiny_cifar
    args = ["reproduce", "relu-vs-tanh", "--data", str(tarball), "--out", str(tmp_path)]
    assert main([*args, "--target-error", "1.5", "--batch-size", "0"]) == 1
    err = capsys.readouterr().err
    assert "target_error" in err and "batch_size" in err and err.count("\n") == 1
    missing = ["reproduce", "relu-vs-tanh", "--data", str(tmp_path / "no"), "--out", str(tmp_path)]
    assert main(missing) == 1
    assert "does not exist" in capsys.readouterr().err


def test_figure_is_drawn_without_pyplot_or_display(tmp_path):
    """The plot builds a bare matplotlib Figure: no GUI backend, no DISPLAY needed."""
    code = (
        "import sys\n"
        "from alexnet.reproduce.plot import plot_figure1\n"
        "from alexnet.reproduce.relu_vs_tanh import Run\n"
        "r = Run('relu', 0.1, [0.5, 0.2]); t = Run('tanh', 0.1, [0.6, 0.4, 0.2])\n"
        f"plot_figure1(r, t, 0.25, 'x', {str(tmp_path / 'f.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert (tmp_path / "f.png").stat().st_size > 0


def test_method_runs_and_tabulates(tmp_path, make_imagefolder):
    """`alexnet reproduce cifar10` on a tiny CIFAR-like folder: the subset, a paper-init and a
    caffe-init model beside it, a second paper-init model, centre and 10-crop errors, the
    average; result.json and result.md."""
    import json

    from alexnet.reproduce.method import MethodConfig, run_method

    src = make_imagefolder(tmp_path / "cifar", train=6, val=3)
    (src / "val").rename(src / "test")  # CIFAR-10's tarball names it so
    cfg = MethodConfig(
        data=str(src),
        out=str(tmp_path / "out"),
        train_per_class=4,
        test_per_class=2,
        epochs=1,
        overrides={
            "batch_size": 4,
            "workers": 0,
            "amp": "off",
            "channels_last": "off",
            "model_kwargs": {"width": 0.0625},  # tests/conftest.py's NARROW
        },
    )
    lines = []
    result = run_method(cfg, log=lines.append)
    assert len(list((tmp_path / "out" / "data" / "train").glob("*/*"))) == 12
    names = [row["model"] for row in result["table"]]
    assert names[:3] == ["paper init, seed 0", "caffe init, seed 0", "paper init, seed 1"] or (
        "caffe init, seed 1" in names  # §5's init stayed at chance: the average is Caffe's
    )
    assert names[-1].startswith("average of the 2")
    for row in result["table"]:
        assert 0 <= row["centre_top1_error"] <= 1 and 0 <= row["ten_crop_top1_error"] <= 1
    saved = json.loads((tmp_path / "out" / "result.json").read_text())
    assert saved["table"] == result["table"]
    md = (tmp_path / "out" / "result.md").read_text()
    assert "| average of the 2" in md and "12 training / 6 test images" in md
    assert result["images"] == {"train": 12, "val": 6}  # 3 classes, not CIFAR-10's 10
    ck = torch.load(tmp_path / "out" / "paper-seed0" / "checkpoints" / "last.pt",
                    weights_only=True, mmap=True)  # fmt: skip
    assert ck["model_kwargs"]["width"] == 0.0625 and ck["model_kwargs"]["init"] == "paper"
