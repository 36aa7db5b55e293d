"""alexnet.outputs.summary and the `alexnet summary` command."""

from __future__ import annotations

import pytest
import torch

from alexnet.cli import main
from alexnet.models import create_model
from alexnet.outputs.summary import summarize


def test_totals_for_the_paper_model():
    s = summarize(create_model("alexnet"), 227)
    assert s.params == 60_965_224
    # conv1 290,400 + conv2 186,624 + conv3 64,896 + conv4 64,896 + conv5 43,264
    # + fc 4096 + 4096 + 1000
    assert s.neurons == 659_272
    convs = {r.name: r for r in s.rows if r.kind == "Conv2d"}
    assert convs["features.conv1"].output_shape == (96, 55, 55)
    assert convs["features.conv1"].macs == 96 * 55 * 55 * 3 * 11 * 11
    assert convs["features.conv2"].macs == 256 * 27 * 27 * 48 * 5 * 5  # two towers: 48 inputs each
    assert s.macs == 724_406_816


@pytest.mark.parametrize("name,size", [("alexnet", 227), ("alexnet_bn", 227), ("alexnet_owt", 224)])
def test_a_model_on_the_meta_device_gives_the_same_table(name, size):
    """`alexnet summary` and bench's FLOPs build the model on the meta device."""
    with torch.device("meta"):
        meta = summarize(create_model(name, width=0.125), size)
    assert meta == summarize(create_model(name, width=0.125), size)
    assert meta.macs > 0 and len(meta.rows) > 10


def test_cli_summary_prints_every_layer(capsys):
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    for layer in ["conv1", "tail1.lrn", "tail1.pool", "conv2", "tail2.lrn", "conv5", "fc6", "fc8"]:
        assert layer in out
    assert "60,965,224" in out and "659,272" in out


def test_cli_summary_other_models_and_sizes(capsys):
    assert main(["summary", "--model", "alexnet_owt"]) == 0
    assert "61,100,840" in capsys.readouterr().out
    assert main(["summary", "--model", "alexnet", "--input-size", "224"]) == 0
    assert "3x224x224" in capsys.readouterr().out


def test_cli_summary_bad_model_is_one_line(capsys):
    assert main(["summary", "--model", "vgg16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alexnet: error: unknown model 'vgg16'") and "Traceback" not in err
    assert main(["summary", "--input-size", "300"]) == 1
    assert "input_size" in capsys.readouterr().err
