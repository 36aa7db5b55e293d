"""Fine-tuning: --init-from a weights file, a replaced fc8, --freeze, --backbone-lr-mult,
the origin recorded, and an exact resume."""

from __future__ import annotations

import torch

from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint, weights_checkpoint
from alexnet.engine.config import TrainConfig
from alexnet.engine.setup import param_groups
from alexnet.engine.train import train
from alexnet.models import create_model

NARROW = {"width": 0.0625}  # tests/conftest.py's NARROW: the paper's layers at 1/16 width


def _pretrained(path, model="alexnet", classes=5, **kwargs):
    """A weights-only checkpoint of a fresh 5-class model (another class count than the data)."""
    torch.manual_seed(3)
    net = create_model(model, num_classes=classes, **kwargs)
    pre = {"input_size": 227, "resize": 256, "resize_mode": "square", "normalize": "channel"}
    state = weights_checkpoint(model, kwargs, net.state_dict(), list("abcde")[:classes], pre, {})
    save_checkpoint(state, path)
    return net.state_dict()


def test_finetune_replaces_fc8_freezes_and_records_its_origin(
    tiny_data, tmp_path, train_config, capsys
):
    before = _pretrained(tmp_path / "pre.pt", init="kaiming", **NARROW)
    cfg = train_config(
        tiny_data, tmp_path / "run", epochs=1, init_from=str(tmp_path / "pre.pt"),
        freeze="conv5", model_kwargs=NARROW, lr=0.01, quiet=False,
    )  # fmt: skip
    train(cfg)
    err = capsys.readouterr().err
    pre = tmp_path / "pre.pt"
    assert f"initialised from {pre}: 14 tensors loaded, fc8 re-initialised (5→3 classes)" in err
    frozen = sum(v.numel() for k, v in before.items() if not k.startswith("classifier."))
    assert f"froze conv1..conv5 ({frozen:,} parameters); training fc6..fc8" in err
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    after = ck["model"]
    for i in range(1, 6):  # frozen: bit-identical
        for p in ("weight", "bias"):
            key = f"features.conv{i}.{p}"
            assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["classifier.fc6.weight"], before["classifier.fc6.weight"])
    assert after["classifier.fc8.weight"].shape == (3, 256)  # fc7 at width 1/16
    assert ck["init_from"] == {
        "file": str(tmp_path / "pre.pt"),
        "model_name": "alexnet",
        "classes": 5,
        "replaced_head": True,
    }
    assert ck["config"]["init_from"] == str(tmp_path / "pre.pt")
    # the weights are fed as they were trained: the file's preprocessing
    assert ck["preprocessing"]["normalize"] == "channel"


def test_finetune_resume_is_bit_identical(tiny_data, tmp_path, train_config):
    _pretrained(tmp_path / "pre.pt", init="kaiming", **NARROW)
    common = dict(init_from=str(tmp_path / "pre.pt"), model_kwargs=NARROW, backbone_lr_mult=0.1)
    train(train_config(tiny_data, tmp_path / "straight", epochs=2, **common))
    train(train_config(tiny_data, tmp_path / "split", epochs=1, **common))
    train(train_config(tiny_data, tmp_path / "split", epochs=2, **common), resume="auto")
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_backbone_lr_mult_groups():
    model = create_model("alexnet", num_classes=3, **NARROW)
    pretrained = {n for n, _ in model.named_parameters() if not n.startswith("classifier.fc8")}
    groups = param_groups(TrainConfig(backbone_lr_mult=0.1), model.named_parameters(), pretrained)
    mults = sorted((g["lr_mult"], len(g["params"])) for g in groups)
    assert mults == [(0.1, 14), (1.0, 2)]  # 7 layers x (weight, bias) vs fc8's two


def test_frozen_batchnorm_keeps_its_statistics(tiny_data, tmp_path, train_config):
    before = _pretrained(tmp_path / "pre.pt", model="alexnet_bn", classes=3, **NARROW)
    cfg = train_config(
        tiny_data, tmp_path / "run", epochs=1, model="alexnet_bn", model_kwargs=NARROW,
        init_from=str(tmp_path / "pre.pt"), freeze="conv2", max_steps=2,
    )  # fmt: skip
    train(cfg)
    after = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    for key in ("features.bn1.running_mean", "features.bn2.running_var", "features.bn2.weight"):
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["features.bn3.running_mean"], before["features.bn3.running_mean"])


def test_init_from_another_model_is_one_line(tiny_data, tmp_path, capsys):
    from alexnet.cli import main

    _pretrained(tmp_path / "bn.pt", model="alexnet_bn", **NARROW)
    code = main(
        ["train", "--data", str(tiny_data), "--out", str(tmp_path / "r"), "--model", "alexnet",
         "--init-from", str(tmp_path / "bn.pt"), "--max-steps", "1", "--workers", "0"]
    )  # fmt: skip
    assert code == 2
    assert "holds model 'alexnet_bn', the run trains 'alexnet'" in capsys.readouterr().err


def test_a_head_of_other_classes_is_replaced_even_at_the_same_count():
    from alexnet.engine.checkpoint import LoadedModel
    from alexnet.engine.setup import init_from_weights

    torch.manual_seed(0)
    source = create_model("alexnet", num_classes=3, **NARROW)
    loaded = LoadedModel(source, "alexnet", ["cat", "dog", "fox"])
    for data_classes, kept in ((["cat", "dog", "fox"], True), (["a", "b", "c"], False)):
        torch.manual_seed(1)
        model = create_model("alexnet", num_classes=3, **NARROW)
        fresh = model.classifier.fc8.weight.detach().clone()
        copied, notes = init_from_weights(model, loaded, "classifier.fc8", "f.pt", data_classes)
        assert ("classifier.fc8.weight" in copied) is kept
        head = source.classifier.fc8.weight if kept else fresh
        assert torch.equal(model.classifier.fc8.weight, head)
        assert torch.equal(model.features.conv3.weight, source.features.conv3.weight)
        assert notes == (
            ["initialised from f.pt: 16 tensors loaded"]
            if kept
            else [
                "initialised from f.pt: 14 tensors loaded, fc8 re-initialised (the file's 3 "
                "classes are not the data's)"
            ]
        )
