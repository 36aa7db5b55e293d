"""Numbers and types read from a checkpoint, a safetensors sidecar or a statistics file are
checked before use: a wrong one is one line naming the file and the field, never a
traceback, never 10 GB for one image; NaN or infinite weights are refused naming the
tensor; files that are not what they claim are one line naming them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
from alexnet.models import create_model

CLASSES = ["circle", "square", "stripes"]  # tiny_data's
NARROW = {"init": "kaiming", "width": 0.125}


@pytest.fixture(scope="module")
def state() -> dict:
    """A valid checkpoint dict of the width-1/8 paper network, with statistics."""
    from alexnet.data import IMAGENET_STATS

    torch.manual_seed(0)
    m = create_model("alexnet", num_classes=3, **NARROW)
    pre = {"input_size": 227, "resize": 256, "resize_mode": "square", "normalize": "channel"}
    pre["stats"] = IMAGENET_STATS.to_dict()
    return weights_checkpoint("alexnet", NARROW, m.state_dict(), CLASSES, pre, {})


@pytest.fixture(scope="module")
def image(tiny_data) -> Path:
    return next((tiny_data / "val" / "circle").glob("*.png"))


def _mutated(state: dict, path: Path, change) -> Path:
    st = {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}
    st["preprocessing"] = dict(st["preprocessing"], stats=dict(st["preprocessing"]["stats"]))
    change(st)
    save_checkpoint(st, path)
    return path


def _predict(run_cli, weights: Path, image: Path, *extra: str):
    return run_cli("predict", str(weights), str(image), "--device", "cpu", *extra)


def _int8(st):
    st["model"] = {k: v.to(torch.int8) for k, v in st["model"].items()}


def _int32(st):
    st["model"] = {k: v.to(torch.int32) for k, v in st["model"].items()}


def _no_std(st):
    del st["preprocessing"]["stats"]["std"]


MUTATIONS = {
    "resize_20000": (lambda st: st["preprocessing"].update(resize=20000), "preprocessing.resize"),
    "input_size_300": (
        lambda st: st["preprocessing"].update(input_size=300),
        "preprocessing.input_size",
    ),
    "resize_mode_text": (
        lambda st: st["preprocessing"].update(resize_mode="zoom"),
        "preprocessing.resize_mode",
    ),
    "classes_5": (lambda st: st.update(classes=5), "classes"),
    "model_as_list": (lambda st: st.update(model=[1, 2]), "model"),
    "model_name_5": (lambda st: st.update(model_name=5), "model_name"),
    "lrn_size_five": (
        lambda st: st.update(model_kwargs=dict(NARROW, lrn_size="five")),
        "model_kwargs.lrn_size",
    ),
    "width_as_text": (
        lambda st: st.update(model_kwargs=dict(NARROW, width="1/8")),
        "model_kwargs.width",
    ),
    "int8_weights": (_int8, "torch.int8"),
    "int32_weights": (_int32, "torch.int32"),
    "stats_without_std": (_no_std, "preprocessing.stats.std"),
    "stats_std_zero": (
        lambda st: st["preprocessing"]["stats"].update(std=[0.2, 0.0, 0.2]),
        "preprocessing.stats.std",
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_wrong_checkpoint_field_is_one_line_naming_it(
    name, state, image, run_cli, one_line_error, tmp_path
):
    change, field_name = MUTATIONS[name]
    ck = _mutated(state, tmp_path / f"{name}.pt", change)
    r = _predict(run_cli, ck, image)
    assert r.returncode == 1 and r.stdout == ""
    err = one_line_error(r)
    assert f"{name}.pt" in err and field_name in err, err


def test_resize_20000_is_refused_before_any_image_is_resized(state, image, tmp_path):
    """The 10 GB case: refused while loading, with the bounds in the message."""
    from alexnet.errors import UserError
    from alexnet.tasks.loading import load_model

    ck = _mutated(state, tmp_path / "big.pt", lambda st: st["preprocessing"].update(resize=20000))
    with pytest.raises(UserError, match=r"preprocessing.resize is 20000; .* 227 and 4 x 227 = 908"):
        load_model(ck)


SIDECAR_MUTATIONS = {
    "classes_5": (lambda meta: meta.update(classes=5), "classes"),
    "resize_20000": (lambda meta: meta["preprocessing"].update(resize=20000), "resize"),
    "stats_without_std": (lambda meta: meta["preprocessing"]["stats"].pop("std"), "stats.std"),
    "lrn_size_five": (lambda meta: meta["model_kwargs"].update(lrn_size="five"), "lrn_size"),
    "model_kwargs_list": (lambda meta: meta.update(model_kwargs=[1]), "model_kwargs"),
}


@pytest.fixture(scope="module")
def exported(state, tmp_path_factory) -> Path:
    from alexnet.engine.checkpoint import model_from_state
    from alexnet.outputs.export import export_safetensors

    d = tmp_path_factory.mktemp("st")
    weights, _ = export_safetensors(model_from_state(state), d / "m.safetensors")
    return weights


@pytest.mark.parametrize("name", sorted(SIDECAR_MUTATIONS))
def test_wrong_sidecar_field_is_one_line_naming_the_sidecar(
    name, exported, image, run_cli, one_line_error, tmp_path
):
    import shutil

    change, field_name = SIDECAR_MUTATIONS[name]
    weights = tmp_path / "m.safetensors"
    shutil.copy(exported, weights)
    meta = json.loads(exported.with_suffix(".json").read_text())
    change(meta)
    (tmp_path / "m.json").write_text(json.dumps(meta))
    err = one_line_error(_predict(run_cli, weights, image))
    assert "m.json" in err and field_name in err, err


def test_int32_safetensors_weights_are_one_line(exported, image, run_cli, one_line_error, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.int32) for k, v in load_file(str(exported)).items()}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    shutil.copy(exported.with_suffix(".json"), tmp_path / "m.json")
    err = one_line_error(_predict(run_cli, tmp_path / "m.safetensors", image))
    assert "m.safetensors" in err and "torch.int32" in err, err


# ---- NaN or infinite weights ----


@pytest.fixture(scope="module")
def nan_checkpoint(state, tmp_path_factory) -> Path:
    def poison(st):
        st["model"] = dict(st["model"])
        w = st["model"]["features.conv3.weight"].clone()
        w[0, 0, 0, 0] = float("nan")
        st["model"]["features.conv3.weight"] = w

    return _mutated(state, tmp_path_factory.mktemp("nan") / "nan.pt", poison)


def test_nan_weights_are_refused_by_predict_evaluate_and_features(
    nan_checkpoint, image, tiny_data, run_cli, one_line_error, tmp_path
):
    runs = [
        _predict(run_cli, nan_checkpoint, image, "--json"),
        run_cli(
            "evaluate", str(nan_checkpoint), "--data", str(tiny_data), "--device", "cpu",
            "--workers", "0", "--json",
        ),
        run_cli(
            "features", str(nan_checkpoint), "--data", str(tiny_data), "--layer", "fc7",
            "--out", str(tmp_path / "f.npz"), "--device", "cpu", "--workers", "0",
        ),
    ]  # fmt: skip
    for r in runs:
        assert r.returncode == 1 and r.stdout == ""
        err = one_line_error(r)
        assert "nan.pt" in err and "tensor features.conv3.weight holds NaN (1 of" in err, err
    assert list(tmp_path.iterdir()) == []


def _refuse(name: str):
    raise AssertionError(f"{name} is not JSON")


def test_predict_json_stays_json_when_outputs_overflow(state, image, run_cli, tmp_path):
    """Finite weights whose logits overflow: each image is an error, the output parses."""

    def huge(st):
        st["model"] = dict(st["model"])
        st["model"]["classifier.fc8.weight"] = torch.full_like(
            st["model"]["classifier.fc8.weight"], 3e38
        )
        st["model"]["classifier.fc8.bias"] = torch.tensor([3e38, -3e38, 3e38])

    ck = _mutated(state, tmp_path / "huge.pt", huge)
    r = _predict(run_cli, ck, image, "--json")
    out = json.loads(r.stdout, parse_constant=_refuse)  # strict JSON: no NaN, no Infinity
    assert r.returncode == 1 and "NaN or infinite" in out[0]["error"]


# ---- files that are not what they claim ----


def test_a_text_file_as_checkpoint_is_one_line_for_every_command(
    image, tiny_data, run_cli, one_line_error, tmp_path
):
    ck = tmp_path / "notes.pt"
    ck.write_text("hello, this is a text file\n")  # torch.load: KeyError: 101
    data = ["--data", str(tiny_data), "--device", "cpu", "--workers", "0"]
    commands = [
        ["predict", str(ck), str(image), "--device", "cpu"],
        ["evaluate", str(ck), *data],
        ["export", str(ck), "--format", "safetensors", "--out", str(tmp_path / "o.safetensors")],
        ["visualize", "filters", str(ck), "--out", str(tmp_path / "f.png")],
        ["features", str(ck), *data, "--layer", "fc7", "--out", str(tmp_path / "f.npz")],
    ]
    for argv in commands:
        err = one_line_error(run_cli(*argv))
        assert f"{ck} is not a checkpoint" in err, (argv[0], err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]  # nothing written


def test_a_3_byte_checkpoint_is_one_line_and_one_user_error(
    image, run_cli, one_line_error, tmp_path
):
    ck = tmp_path / "tiny.pt"
    ck.write_bytes(b"abc")  # torch.load: IndexError: pop from empty list
    assert f"{ck} is not a checkpoint" in one_line_error(run_cli("predict", str(ck), str(image)))
    code = f"import alexnet; alexnet.load({str(ck)!r})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("alexnet.errors.UserError: ")
    assert f"{ck} is not a checkpoint" in last


def _data_with_stats(make_imagefolder, root: Path) -> Path:
    from alexnet.data import compute_stats

    data = make_imagefolder(root, train=2, val=1, size=(24, 20))
    compute_stats(str(data), size=32).save(data)
    return data


def test_truncated_mean_image_is_one_line(make_imagefolder, tmp_path, run_cli, one_line_error):
    data = _data_with_stats(make_imagefolder, tmp_path / "d")
    npy = data / "mean_image.npy"
    npy.write_bytes(npy.read_bytes()[:200])
    from alexnet.data import load_stats
    from alexnet.errors import UserError

    with pytest.raises(UserError, match=r"mean_image.npy is truncated or not a .npy file"):
        load_stats(str(data))
    r = run_cli(
        "train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
        "--batch-size", "2", "--device", "cpu", "--model-kwargs", json.dumps(NARROW),
    )  # fmt: skip
    err = one_line_error(r)
    assert "mean_image.npy is truncated" in err and "delete it" in err


@pytest.mark.parametrize(
    "text, what",
    [
        ("{ not json", "is not valid JSON"),
        ('{"mean": [0.5, 0.5], "std": "x"}', "mean must be 3 finite numbers"),
        ("[1, 2, 3]", "statistics must be a mapping"),
        ('{"mean": [1,1,1], "std": [1,1,1], "eigval": [1,1,1], "eigvec": 7}', "eigvec must"),
    ],
    ids=["garbage", "short-mean", "list", "eigvec"],
)
def test_garbage_stats_json_is_one_line(text, what, make_imagefolder, tmp_path):
    from alexnet.data import load_stats
    from alexnet.errors import UserError

    data = _data_with_stats(make_imagefolder, tmp_path / "d")
    (data / "stats.json").write_text(text)
    with pytest.raises(UserError, match=what) as e:
        load_stats(str(data))
    assert str(e.value).startswith(str(data / "stats.json"))
