"""Bad checkpoint files: each a one-line error and a non-zero exit, never a traceback."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest
import torch

from alexnet.engine.checkpoint import save_checkpoint
from alexnet.models import create_model

NARROW = {"init": "kaiming", "width": 0.125}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A valid 3-class checkpoint of format 1 (the paper's network at width 1/8: 3.6 MB)."""
    p = tmp_path_factory.mktemp("ck") / "good.pt"
    m = create_model("alexnet", num_classes=3, **NARROW)
    save_checkpoint(
        {
            "format_version": 1,
            "model": m.state_dict(),
            "model_name": "alexnet",
            "model_kwargs": NARROW,
            "classes": ["a", "b", "c"],
            "preprocessing": {},
        },
        p,
    )
    return p


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    from PIL import Image

    p = tmp_path_factory.mktemp("img") / "x.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(p)
    return p


def _predict(run_cli, ck: Path, image: Path):
    return run_cli("predict", str(ck), str(image), "--device", "cpu")


def test_good_checkpoint_predicts(run_cli, good, image):
    r = _predict(run_cli, good, image)
    assert r.returncode == 0, r.stderr


def test_truncated(run_cli, one_line_error, good, image, tmp_path):
    p = tmp_path / "truncated.pt"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated or corrupt" in one_line_error(_predict(run_cli, p, image))


def test_empty(run_cli, one_line_error, image, tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    assert "is empty" in one_line_error(_predict(run_cli, p, image))


def test_another_models_checkpoint(run_cli, one_line_error, good, image, tmp_path):
    st = torch.load(good, weights_only=True)
    st["model_name"], st["model_kwargs"] = "alexnet_owt", {}
    save_checkpoint(st, tmp_path / "other.pt")
    err = one_line_error(_predict(run_cli, tmp_path / "other.pt", image))
    assert "do not fit model 'alexnet_owt'" in err


def test_another_class_count(run_cli, one_line_error, good, image, tmp_path):
    st = torch.load(good, weights_only=True)
    st["classes"] = ["a", "b", "c", "d", "e"]
    save_checkpoint(st, tmp_path / "five.pt")
    err = one_line_error(_predict(run_cli, tmp_path / "five.pt", image))
    assert "different number of classes" in err


def test_ddp_module_prefix_is_accepted(run_cli, good, image, tmp_path):
    st = torch.load(good, weights_only=True)
    st["model"] = {f"module.{k}": v for k, v in st["model"].items()}
    save_checkpoint(st, tmp_path / "ddp.pt")
    r = _predict(run_cli, tmp_path / "ddp.pt", image)
    assert r.returncode == 0, r.stderr


def test_pickle_payload_is_refused_and_never_runs(run_cli, one_line_error, good, image, tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    st = torch.load(good, weights_only=True)
    st["extra"] = Payload()
    torch.save(st, tmp_path / "evil.pt")
    raw = tmp_path / "evil.pkl.pt"
    raw.write_bytes(pickle.dumps({"model": Payload(), "model_name": "alexnet"}))
    for p in (tmp_path / "evil.pt", raw):
        err = one_line_error(_predict(run_cli, p, image))
        assert "refused" in err or "corrupt" in err
    assert not marker.exists()


def test_safetensors_header_longer_than_file(run_cli, one_line_error, image, tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", 10**9) + b'{"a": 1}')
    (tmp_path / "bad.json").write_text("{}")
    err = one_line_error(_predict(run_cli, p, image))
    assert "bad.safetensors" in err


def test_pt2_and_torchscript_are_never_loaded(run_cli, one_line_error, image, tmp_path):
    for name in ("model.pt2", "model.ts"):
        p = tmp_path / name
        p.write_bytes(b"PK\x03\x04 not really")
        assert "refusing to load" in one_line_error(_predict(run_cli, p, image))


def test_debug_flag_shows_the_traceback(run_cli, image, tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    r = run_cli("--debug", "predict", str(p), str(image))
    assert r.returncode == 1 and "Traceback" in r.stderr
