"""Files of a format this alexnet does not read: refused in one line naming the file's
format and the range read here; never used, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alexnet.engine.checkpoint import CHECKPOINT_VERSION, save_checkpoint, weights_checkpoint
from alexnet.models import create_model

CLASSES = ["circle", "square", "stripes"]  # tiny_data's


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A valid 3-class checkpoint of this version's format (width 1/8: 3.6 MB)."""
    p = tmp_path_factory.mktemp("ck") / "good.pt"
    narrow = {"init": "kaiming", "width": 0.125}
    m = create_model("alexnet", num_classes=3, **narrow)
    save_checkpoint(weights_checkpoint("alexnet", narrow, m.state_dict(), CLASSES, {}, {}), p)
    return p


@pytest.fixture(scope="module")
def image(tiny_data) -> Path:
    return next((tiny_data / "val" / "circle").glob("*.png"))


@pytest.fixture(scope="module")
def store(tiny_data, tmp_path_factory) -> Path:
    from alexnet.data import prepare_store

    p = tmp_path_factory.mktemp("store") / "s"
    prepare_store(tiny_data, p, size=16, stats=False)
    return p


def _with_version(store: Path, dst: Path, version) -> Path:
    """A copy of ``store`` whose meta.json says ``version``."""
    import shutil

    shutil.copytree(store, dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta["version"] = version
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def _predict_and_evaluate(run_cli, weights: Path, image: Path, data: Path):
    yield run_cli("predict", str(weights), str(image), "--device", "cpu")
    yield run_cli(
        "evaluate", str(weights), "--data", str(data), "--device", "cpu", "--workers", "0"
    )


def test_newer_checkpoint_format_is_refused(
    run_cli, one_line_error, good, image, tiny_data, tmp_path
):
    st = torch.load(good, weights_only=True)
    st["format_version"] = 99
    save_checkpoint(st, tmp_path / "future.pt")
    for r in _predict_and_evaluate(run_cli, tmp_path / "future.pt", image, tiny_data):
        assert r.returncode == 1 and r.stdout == ""
        err = one_line_error(r)
        assert "future.pt was written in checkpoint format 99" in err
        assert f"reads formats 1..{CHECKPOINT_VERSION}: upgrade alexnet" in err


def test_newer_sidecar_format_is_refused(run_cli, one_line_error, good, image, tiny_data, tmp_path):
    from alexnet.engine.checkpoint import load_checkpoint, model_from_state
    from alexnet.outputs.export import export_safetensors
    from alexnet.outputs.export._common import SIDECAR_VERSION

    weights, side = export_safetensors(
        model_from_state(load_checkpoint(good)), tmp_path / "m.safetensors"
    )
    meta = json.loads(side.read_text())
    meta["format_version"] = 99
    side.write_text(json.dumps(meta))
    for r in _predict_and_evaluate(run_cli, weights, image, tiny_data):
        assert r.returncode == 1 and r.stdout == ""
        err = one_line_error(r)
        assert "m.json was written in sidecar format 99" in err
        assert f"reads formats 1..{SIDECAR_VERSION}: upgrade alexnet" in err


def test_newer_store_format_is_refused(run_cli, one_line_error, good, store, tmp_path):
    from alexnet.data.store import VERSION

    future = _with_version(store, tmp_path / "future-store", 99)
    r = run_cli("evaluate", str(good), "--data", str(future), "--device", "cpu", "--workers", "0")
    assert r.returncode == 1 and r.stdout == ""
    err = one_line_error(r)
    assert "future-store was written in store format 99" in err
    assert f"this alexnet reads format {VERSION}: upgrade alexnet" in err


def test_older_store_format_names_the_command_that_recreates_it(
    run_cli, one_line_error, good, store, tmp_path
):
    old = _with_version(store, tmp_path / "old-store", 0)
    r = run_cli("evaluate", str(good), "--data", str(old), "--device", "cpu", "--workers", "0")
    assert r.returncode == 1
    err = one_line_error(r)
    assert "old-store was written in store format 0, which this alexnet no longer reads" in err
    source = json.loads((old / "meta.json").read_text())["source"]  # tiny_data, resolved
    assert err.endswith(f"re-create it with `alexnet prepare {source} {old} --force`")
