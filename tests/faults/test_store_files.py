"""A packed store's files damaged or forged: every field of meta.json and the label files
is checked before use, and each fault is one line naming the file. Fuzzed with Hypothesis."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from alexnet.data import PackedDataset, prepare_store
from alexnet.errors import UserError


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store of 2 classes, 2 train + 1 val images each, 8x8."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(1)
    for split, n in (("train", 2), ("val", 1)):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    out = tmp_path_factory.mktemp("stores") / "s"
    prepare_store(root, out, size=8, stats=False)
    return out


def _copy(store: Path, where: Path) -> Path:
    return Path(shutil.copytree(store, where / "s"))


def _meta(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())


def test_store_labels_out_of_range_are_one_line_naming_the_file(
    store, tmp_path, run_cli, one_line_error, small_config
):
    s = _copy(store, tmp_path)
    np.save(s / "train_labels.npy", np.array([0, 1, 7, 1], dtype=np.int64))
    r = run_cli(
        "train", "--config", str(small_config), "--data", str(s), "--out", str(tmp_path / "r")
    )
    line = one_line_error(r)
    assert str(s / "train_labels.npy") in line and "label 7 out of range 0..1" in line, line


DAMAGE = {
    "labels truncated": ("train_labels.npy", lambda p: p.write_bytes(p.read_bytes()[:-9])),
    "labels garbage": ("train_labels.npy", lambda p: p.write_bytes(b"not numpy at all")),
    "labels as floats": ("train_labels.npy", lambda p: np.save(p, np.zeros(4, np.float32))),
    "labels 2-D": ("train_labels.npy", lambda p: np.save(p, np.zeros((2, 2), np.int64))),
    "labels too few": ("train_labels.npy", lambda p: np.save(p, np.zeros(3, np.int64))),
    "labels negative": ("train_labels.npy", lambda p: np.save(p, np.array([0, -1, 0, 1]))),
    "labels missing": ("train_labels.npy", lambda p: p.unlink()),
    "images truncated": ("train.u8", lambda p: p.write_bytes(p.read_bytes()[:-1])),
    "meta garbage": ("meta.json", lambda p: p.write_bytes(b"\xff\xfe{garbage")),
    "meta truncated": ("meta.json", lambda p: p.write_text(p.read_text()[:40])),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_store_files_are_one_line_naming_the_file(case, store, tmp_path):
    s = _copy(store, tmp_path)
    name, damage = DAMAGE[case]
    damage(s / name)
    with pytest.raises(UserError) as e:
        PackedDataset(s, "train")
    assert str(s / name) in str(e.value) and "\n" not in str(e.value), str(e.value)


FORGED = {
    "size:text": "256",
    "size:zero": 0,
    "size:huge": 10**12,
    "classes:repeated": ["a", "a"],
    "classes:numbers": [1, 2],
    "splits:negative-count": {
        "train": {"count": -1, "images": "train.u8", "labels": "train_labels.npy"}
    },
    "splits:path": {"train": {"count": 4, "images": "../../etc/passwd", "labels": "x.npy"}},
    "resize_mode:unknown": "fisheye",
    "source:number": 3,
}


@pytest.mark.parametrize("key", sorted(FORGED))
def test_forged_meta_fields_are_one_line_naming_the_field(key, store, tmp_path):
    s = _copy(store, tmp_path)
    meta = _meta(s)
    field = key.split(":")[0]
    meta[field] = FORGED[key]
    (s / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=rf"meta\.json: {field}\S* must be"):
        PackedDataset(s, "train")


def test_a_split_name_with_a_newline_is_escaped_in_the_one_line(store, tmp_path):
    """Hypothesis found it: a forged split named "a\nb" split the error over two lines."""
    s = _copy(store, tmp_path)
    meta = _meta(s)
    meta["splits"]["a\nb"] = None
    (s / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError) as e:
        PackedDataset(s, "train")
    assert str(e.value).endswith("meta.json: splits.a\\nb must be an object, got None")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = ["format", "version", "complete", "size", "resize_mode", "classes", "splits", "source"]


@st.composite
def _meta_file(draw, valid: dict) -> bytes:
    """meta.json bytes: the valid document with fields replaced, removed or nested
    values forged, any JSON document, or any bytes."""
    kind = draw(st.sampled_from(["fields", "split", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(_json)).encode()
    meta = json.loads(json.dumps(valid))
    if kind == "split":
        info = meta["splits"][draw(st.sampled_from(["train", "val"]))]
        info[draw(st.sampled_from(["count", "images", "labels", "files_sha256"]))] = draw(_json)
    else:
        for key in draw(st.lists(st.sampled_from(_fields), min_size=1, max_size=3)):
            if draw(st.booleans()):
                meta.pop(key, None)
            else:
                meta[key] = draw(_json)
    return json.dumps(meta).encode()


_label_arrays = hnp.arrays(
    dtype=st.sampled_from([np.int64, np.int32, np.uint8, np.uint64, np.float64, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=6),
)


@given(data=st.data())
@settings(
    max_examples=200,
    deadline=2000,  # ms per input: the reader never reads more than the files hold
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzzed_store_metadata_is_a_dataset_or_one_user_error(store, data):
    """Any meta.json and any label file (any bytes, any array): a dataset, or one
    UserError of one line; within 2 s per input."""
    valid = _meta(store)
    with tempfile.TemporaryDirectory() as tmp:
        s = _copy(store, Path(tmp))
        (s / "meta.json").write_bytes(data.draw(_meta_file(valid)))
        labels = data.draw(st.sampled_from(["keep", "bytes", "array"]))
        if labels == "bytes":
            (s / "train_labels.npy").write_bytes(data.draw(st.binary(max_size=300)))
        elif labels == "array":
            np.save(s / "train_labels.npy", data.draw(_label_arrays))
        try:
            ds = PackedDataset(s, "train")
        except UserError as e:
            assert str(e) and "\n" not in str(e), str(e)
            return
        assert ds.targets.dtype == np.int64 and len(ds.targets) == len(ds)
        assert all(0 <= t < len(ds.classes) for t in ds.targets.tolist())
        assert ds[len(ds) - 1][0].shape == (3, ds.size, ds.size) if len(ds) else True
        ds.close()
