"""import-torchvision: torchvision's AlexNet state dict -> our alexnet_owt checkpoint."""

from __future__ import annotations

import pytest
import torch
import torchvision

from alexnet.cli import main
from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint, weights_checkpoint
from alexnet.errors import UserError
from alexnet.models import create_model
from alexnet.outputs.export import import_torchvision
from alexnet.tasks.loading import load_model


@pytest.fixture(scope="module")
def tv_model():
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).eval()  # random weights, no download


@pytest.fixture(scope="module")
def tv_file(tv_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tv") / "alexnet-owt-random.pth"
    torch.save(tv_model.state_dict(), path)
    return path


def test_imported_checkpoint_matches_torchvision(tv_model, tv_file, tmp_path):
    out = import_torchvision(tv_file, tmp_path / "owt.pt")
    state = load_checkpoint(out)
    assert state["model_name"] == "alexnet_owt"
    assert len(state["classes"]) == 1000 and state["classes"][0] == "tench"
    pre = state["preprocessing"]
    assert (pre["resize"], pre["input_size"], pre["normalize"]) == (256, 224, "channel")
    assert pre["resize_mode"] == "shorter"
    stats = pre["stats"]
    assert stats["mean"] == [0.485, 0.456, 0.406] and stats["std"] == [0.229, 0.224, 0.225]
    loaded = load_model(out, expect_model="alexnet_owt", expect_num_classes=1000)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), tv_model(x))


def _stand_in(num_classes: int, **replace: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's AlexNet state dict, every tensor of its shape a broadcast zero (one
    float in the file, not 244 MB), ``replace`` swapped in: for tests of the checks that
    never read the values."""
    with torch.device("meta"):
        shapes = torchvision.models.alexnet(weights=None, num_classes=num_classes).state_dict()
    sd = {k: torch.zeros(()).expand(v.shape) for k, v in shapes.items()}
    return {**sd, **replace}


def test_cli_with_own_class_names(tmp_path, capsys):
    """A 3-way net at width 1/8 (the importer takes alexnet_owt's narrower widths too)."""
    torch.manual_seed(1)
    narrow = create_model("alexnet_owt", num_classes=3, width=0.125)
    src = tmp_path / "small.pth"
    torch.save(narrow.state_dict(), src)  # torchvision's keys
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\nfox\n")
    out = tmp_path / "small.pt"
    args = ["import-torchvision", str(src), "--out", str(out), "--classes", str(names)]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = load_model(out)
    assert loaded.classes == ["cat", "dog", "fox"] and loaded.model_kwargs == {"width": 0.125}
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), narrow.eval()(x))


@pytest.mark.parametrize(
    ("conv1", "message"),
    [
        (63, r"features.0.weight is torch.float32 \(63, 3, 11, 11\), torchvision's AlexNet has "),
        (8, r"features.0.bias is torch.float32 \(64,\), torchvision's AlexNet at width 0.125 "
            r"has torch.float32 \(8,\)"),
    ],
    ids=["no-width-gives-63", "narrow-conv1-full-rest"],
)  # fmt: skip
def test_a_conv1_of_another_count_is_named(tmp_path, conv1, message):
    """Conv1's count gives the width; a count no width gives, or a file whose other layers
    are of another width, is refused in one line naming the first tensor that differs."""
    bad = tmp_path / "bad.pth"
    torch.save(_stand_in(1000, **{"features.0.weight": torch.zeros(conv1, 3, 11, 11)}), bad)
    with pytest.raises(UserError, match=message) as e:
        import_torchvision(bad, tmp_path / "x.pt")
    assert "\n" not in str(e.value) and not (tmp_path / "x.pt").exists()


def test_class_count_mismatch(tv_file, tmp_path):
    with pytest.raises(UserError, match="3 class names given for a 1000-way"):
        import_torchvision(tv_file, tmp_path / "x.pt", classes=["a", "b", "c"])


def test_not_an_alexnet_state_dict(tmp_path, capsys):
    bad = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), bad)
    assert main(["import-torchvision", str(bad), "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert "is not torchvision's AlexNet state dict" in err and err.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


def test_wrong_shapes(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save(_stand_in(1000, **{"features.0.weight": torch.zeros(64, 3, 7, 7)}), bad)
    with pytest.raises(UserError, match="features.0.weight"):
        import_torchvision(bad, tmp_path / "x.pt")


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pickle at all", None],
    ids=["empty", "garbage", "pickled-object"],
)
def test_unreadable_files(tmp_path, content):
    bad = tmp_path / "bad.pth"
    if content is None:  # a pickle that weights_only refuses (an arbitrary class instance)
        torch.save({"x": torch.nn.Linear(2, 2)}, bad)
    else:
        bad.write_bytes(content)
    with pytest.raises(UserError) as e:
        import_torchvision(bad, tmp_path / "x.pt")
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        import_torchvision(tmp_path / "nope.pth", tmp_path / "x.pt")


def test_refuses_our_own_checkpoint(tmp_path):
    narrow = create_model("alexnet_owt", num_classes=2, width=0.125)
    state = weights_checkpoint(
        "alexnet_owt", {"width": 0.125}, narrow.state_dict(), ["a", "b"], {}, {}
    )
    ours = save_checkpoint(state, tmp_path / "owt.pt")
    with pytest.raises(UserError, match="already an alexnet checkpoint"):
        import_torchvision(ours, tmp_path / "again.pt")
