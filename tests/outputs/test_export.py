"""Export round trips: ONNX (onnxruntime vs PyTorch on other batch sizes), safetensors +
sidecar (and its one-line errors), torch.export .pt2."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from alexnet.cli import main
from alexnet.engine.checkpoint import (
    CHECKPOINT_VERSION,
    LoadedModel,
    load_checkpoint,
    save_checkpoint,
)
from alexnet.errors import UserError
from alexnet.models import create_model
from alexnet.ops import _loader as _kernels
from alexnet.outputs.export import (
    ONNX_TOLERANCE,
    export_onnx,
    export_pt2,
    export_safetensors,
    load_safetensors_model,
    sidecar_path,
)
from alexnet.tasks.loading import load_model

CLASSES = [f"class{i}" for i in range(10)]
PRE = {"input_size": 227, "resize": 256, "normalize": "channel"}


def _loaded(name: str = "alexnet", **kwargs) -> LoadedModel:
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(CLASSES), **kwargs).eval()
    return LoadedModel(model, name, list(CLASSES), kwargs, dict(PRE), "test")


@pytest.fixture(scope="module")
def paper_model() -> LoadedModel:
    """The paper's network at width 1/8: both towers and LRNs."""
    return _loaded("alexnet", width=0.125)


@pytest.fixture(scope="module")
def onnx_report(paper_model, tmp_path_factory):
    """One ONNX export of the paper model (LRN, two towers) per module: it takes seconds."""
    out = tmp_path_factory.mktemp("onnx") / "alexnet.onnx"
    return export_onnx(paper_model, out, batch_sizes=(1, 3, 5))


def test_onnx_matches_pytorch_on_other_batch_sizes(onnx_report):
    assert onnx_report.path.is_file()
    assert sorted(onnx_report.max_abs_diff) == [1, 3, 5]  # exported at batch 2
    assert onnx_report.worst <= ONNX_TOLERANCE and onnx_report.max_abs_logit > 0


def test_onnx_has_dynamic_batch_and_metadata(onnx_report, paper_model):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_report.path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1:] == [3, 227, 227]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["alexnet.classes"]) == CLASSES
    assert json.loads(meta["alexnet.model_name"]) == "alexnet"
    x = torch.randn(7, 3, 227, 227)
    with torch.no_grad():
        ref = paper_model.model(x)
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    assert (got - ref).abs().max().item() <= ONNX_TOLERANCE


def test_onnx_normalises_with_onnx_lrn_per_tower(onnx_report):
    import onnx

    ops = [n.op_type for n in onnx.load(str(onnx_report.path)).graph.node]
    assert ops.count("LRN") == 4  # conv1's and conv2's two towers
    assert not any(n.startswith("alexnet") for n in ops)


def test_onnx_of_the_three_layers_under_no_grad(monkeypatch, paper_model, tmp_path):
    """Without the C kernels the LRN op runs alone; under no_grad it is not traced in place."""
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    with torch.no_grad():
        report = export_onnx(paper_model, tmp_path / "m.onnx", batch_sizes=(1,))
    assert report.worst <= ONNX_TOLERANCE


def test_pt2_of_the_paper_model_calls_the_custom_ops(paper_model, tmp_path):
    out = export_pt2(paper_model, tmp_path / "alexnet.pt2")
    # Loading a .pt2 is allowed here only because this test made the file itself.
    program = torch.export.load(out)
    targets = {str(n.target) for n in program.graph.nodes}
    fused = _kernels.lrn_library() is not None  # else the three layers, the LRN op alone
    assert ("alexnet.relu_lrn_pool.default" if fused else "alexnet.lrn.default") in targets
    x = torch.randn(3, 3, 227, 227)  # exported at batch 2
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), paper_model.model(x))


def _tiny_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=8),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    ).eval()


def test_onnx_mismatch_is_an_error(tmp_path, monkeypatch):
    import alexnet.outputs.export.programs as programs

    monkeypatch.setattr(programs, "check_onnx", lambda *a, **k: ({1: 0.5}, 2.0))
    with pytest.raises(UserError, match="differs from PyTorch by 0.5"):
        tiny = LoadedModel(_tiny_net(), "alexnet", ["a", "b", "c"], {}, {"input_size": 32})
        export_onnx(tiny, tmp_path / "tiny.onnx")


def test_safetensors_round_trip(paper_model, tmp_path):
    weights, side = export_safetensors(paper_model, tmp_path / "m.safetensors")
    assert side == tmp_path / "m.json" == sidecar_path(weights)
    meta = json.loads(side.read_text())
    assert meta["model_name"] == "alexnet" and meta["classes"] == CLASSES
    assert meta["preprocessing"] == PRE and meta["format_version"] == 2
    back = load_safetensors_model(weights)
    assert back.model_name == "alexnet" and back.classes == CLASSES
    x = torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        assert torch.equal(back.model.eval()(x), paper_model.model(x))
    # load_model (what evaluate/predict call) takes the .safetensors in place of a checkpoint
    via = load_model(weights, expect_model="alexnet", expect_num_classes=10)
    assert via.preprocessing == PRE


def test_safetensors_from_checkpoint_path(tmp_path):
    model = create_model("alexnet_owt", num_classes=3, width=0.125)
    state = {
        "format_version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "model_name": "alexnet_owt",
        "model_kwargs": {"width": 0.125},
        "classes": ["a", "b", "c"],
        "preprocessing": {"input_size": 224},
    }
    ckpt = save_checkpoint(state, tmp_path / "c.pt")
    assert (
        main(
            [
                "export",
                str(ckpt),
                "--format",
                "safetensors",
                "--out",
                str(tmp_path / "c.safetensors"),
            ]
        )
        == 0
    )
    back = load_model(tmp_path / "c.safetensors")
    assert back.classes == ["a", "b", "c"] and back.model_name == "alexnet_owt"


@pytest.fixture()
def small_safetensors(tmp_path):
    """The paper's network at width 1/8 as .safetensors + sidecar (a 3.6 MB pair)."""
    net = create_model("alexnet", num_classes=2, width=0.125)
    loaded = LoadedModel(net, "alexnet", ["a", "b"], {"width": 0.125})
    return export_safetensors(loaded, tmp_path / "w.safetensors")[0]


def test_safetensors_header_longer_than_file(small_safetensors):
    data = bytearray(small_safetensors.read_bytes())
    data[:8] = struct.pack("<Q", len(data) * 2)
    small_safetensors.write_bytes(bytes(data))
    with pytest.raises(UserError, match="header length .* larger than the file"):
        load_safetensors_model(small_safetensors)


def test_safetensors_truncated(small_safetensors):
    small_safetensors.write_bytes(small_safetensors.read_bytes()[:1000])
    with pytest.raises(UserError) as e:
        load_model(small_safetensors)
    assert "\n" not in str(e.value)


def test_safetensors_missing_sidecar(small_safetensors, capsys):
    sidecar_path(small_safetensors).unlink()
    with pytest.raises(UserError, match="sidecar w.json is missing"):
        load_safetensors_model(small_safetensors)
    # through the CLI: one line on stderr, exit code 1
    out = small_safetensors.with_name("x.onnx")
    assert main(["export", str(small_safetensors), "--format", "onnx", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alexnet: error:") and err.count("\n") == 1


def test_safetensors_wrong_keys(small_safetensors):
    side = sidecar_path(small_safetensors)
    meta = json.loads(side.read_text())
    meta["model_name"] = "alexnet_owt"  # torchvision's shapes differ from the paper net's
    meta["model_kwargs"] = {}
    side.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="weights do not fit model 'alexnet_owt'"):
        load_safetensors_model(small_safetensors)


def test_safetensors_bad_sidecar(small_safetensors):
    sidecar_path(small_safetensors).write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_safetensors_model(small_safetensors)


def test_pt2_export_runs(tmp_path):
    loaded = LoadedModel(
        create_model("alexnet_owt", num_classes=4, width=0.125).eval(),
        "alexnet_owt",
        list("abcd"),
        {"width": 0.125},
    )
    out = export_pt2(loaded, tmp_path / "m.pt2")
    assert out.is_file() and out.stat().st_size > 0
    # Loading a .pt2 is allowed here only because this test made the file itself.
    extra = {"alexnet.json": ""}
    program = torch.export.load(out, extra_files=extra)
    assert json.loads(extra["alexnet.json"])["classes"] == list("abcd")
    x = torch.randn(3, 3, 224, 224)  # exported at batch 2
    with torch.no_grad():
        assert torch.allclose(program.module()(x), loaded.model(x), atol=1e-5)


@pytest.mark.parametrize("suffix", [".pt2", ".ts", ".torchscript"])
def test_load_checkpoint_refuses_programs(tmp_path, suffix):
    p = tmp_path / f"m{suffix}"
    p.write_bytes(b"anything")
    with pytest.raises(UserError, match="refusing to load"):
        load_checkpoint(p)
    with pytest.raises(UserError, match="refusing to load"):
        load_model(p)


def test_cli_export_rejects_wrong_suffix(small_safetensors, capsys):
    args = ["export", str(small_safetensors), "--format", "pt2", "--out", "x.onnx"]
    assert main(args) == 1
    assert "should end in .pt2" in capsys.readouterr().err
