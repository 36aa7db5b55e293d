"""Fuzzing the readers of outside files: checkpoints (arbitrary bytes, damaged files, valid
dicts with mutated fields), safetensors weights and their sidecars (bytes, headers, fields),
statistics files (stats.json, mean_image.npy). Each input gives a result or exactly one
``UserError``, each within ``DEADLINE_MS`` and all of them within ``MEMORY_BUDGET`` of
resident memory beyond what the process held before."""

from __future__ import annotations

import copy
import json
import os
import resource
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alexnet.data import IMAGENET_STATS, DatasetStats
from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
from alexnet.errors import UserError
from alexnet.models import create_model
from alexnet.tasks.loading import load_model, transform

DEADLINE_MS = 5000  # per input, on a busy 2-core machine; a bounded reader takes < 0.5 s
MEMORY_BUDGET = 400 * 2**20  # peak resident memory added by a whole test's inputs
# the readers' checks do not depend on the size: width 1/32 (58 K parameters) is a 0.24 MB
# checkpoint, written once per example
NARROW = {"init": "kaiming", "width": 1 / 32}
FUZZ = settings(
    max_examples=int(os.environ.get("ALEXNET_FUZZ_EXAMPLES", "40")),  # more for a deeper run
    deadline=DEADLINE_MS,
    # memory_budget spans all of a test's inputs on purpose
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)


# inputs that are a checkpoint written and loaded: fewer unless asked for more
HEAVY = settings(
    FUZZ, max_examples=FUZZ.max_examples if "ALEXNET_FUZZ_EXAMPLES" in os.environ else 25
)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


@pytest.fixture
def memory_budget():
    """Fails the test if its inputs raised the peak resident memory by more than the budget."""
    before = _peak_rss()
    yield
    grown = _peak_rss() - before
    assert grown <= MEMORY_BUDGET, f"peak memory grew by {grown / 2**20:.0f} MiB"


def _state() -> dict:
    torch.manual_seed(0)
    m = create_model("alexnet", num_classes=3, **NARROW)
    pre = {"input_size": 227, "resize": 256, "resize_mode": "square", "normalize": "channel"}
    pre["stats"] = IMAGENET_STATS.to_dict()
    return weights_checkpoint("alexnet", NARROW, m.state_dict(), ["a", "b", "c"], pre, {})


STATE = _state()
WORK = Path(tempfile.mkdtemp(prefix="alexnet-fuzz-"))
GOOD = save_checkpoint(STATE, WORK / "good.pt")


def _one_result_or_user_error(path: Path) -> None:
    """Load ``path`` as evaluate/predict do and build its transform; only UserError may
    come out."""
    try:
        loaded = load_model(path)
        transform(loaded)
    except UserError as e:
        assert "\n" not in str(e).strip(), str(e)


# ---- checkpoints ----


@FUZZ
@given(data=st.binary(max_size=2048), zip_magic=st.booleans())
def test_arbitrary_bytes_as_a_checkpoint(data, zip_magic, memory_budget):
    p = WORK / "bytes.pt"
    p.write_bytes((b"PK\x03\x04" if zip_magic else b"") + data)
    _one_result_or_user_error(p)


@HEAVY
@given(
    cut=st.integers(1, 10**6),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
)
def test_a_damaged_checkpoint(cut, flips, memory_budget):
    """Bytes overwritten (at millionths of the length) and the file cut short."""
    raw = bytearray(GOOD.read_bytes())
    for where, byte in flips:
        raw[where * (len(raw) - 1) // 10**6] = byte
    p = WORK / "damaged.pt"
    p.write_bytes(bytes(raw[: max(1, cut * len(raw) // 10**6)]))
    _one_result_or_user_error(p)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 5000),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["alexnet", "alexnet_owt", "square", "shorter", "pixel", "paper", "tower"]),
)
TENSORS = st.builds(
    lambda dtype, n, fill: torch.full((n,), fill).to(dtype),
    st.sampled_from([torch.float32, torch.float16, torch.int8, torch.int32, torch.int64]),
    st.integers(0, 4),
    st.sampled_from([0.0, 1.0, float("nan"), float("inf")]),
)
VALUES = st.recursive(
    st.one_of(SCALARS, TENSORS),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "format_version", "model", "model_name", "model_kwargs", "classes", "preprocessing",
    "config", "ema", "epoch", "step", "config.ema_decay",
    "model.features.conv1.weight", "model.classifier.fc8.bias", "classes.0",
    "model_kwargs.lrn_size", "model_kwargs.width", "model_kwargs.input_size",
    "model_kwargs.dropout", "model_kwargs.init", "model_kwargs.lrn", "model_kwargs.extra",
    "preprocessing.input_size", "preprocessing.resize", "preprocessing.resize_mode",
    "preprocessing.normalize", "preprocessing.stats", "preprocessing.stats.mean",
    "preprocessing.stats.std", "preprocessing.stats.eigval", "preprocessing.stats.eigvec",
    "preprocessing.stats.mean_image", "preprocessing.stats.num_images",
]  # fmt: skip


def _set(d, path: str, value) -> None:
    """``d[a][b]... = value`` along a dotted path, lists by index; under "model" and "ema"
    the rest is one tensor name (it holds dots); a missing mapping on the way is created."""
    head, _, rest = path.partition(".")
    if isinstance(d, list):
        if d:
            d[int(head) % len(d) if head.isdigit() else 0] = value
        return
    if not isinstance(d, dict):
        return
    if not rest:
        d[head] = value
    elif head in ("model", "ema"):
        d[head] = dict(d[head]) if isinstance(d.get(head), dict) else {}
        d[head][rest] = value
    else:
        if not isinstance(d.get(head), (dict, list)):
            d[head] = {}
        _set(d[head], rest, value)


@HEAVY
@given(
    changes=st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=3),
    with_ema=st.booleans(),
)
def test_a_checkpoint_with_mutated_fields(changes, with_ema, memory_budget):
    state = copy.deepcopy(STATE)
    if with_ema:
        state["ema"] = {f"module.{k}": v for k, v in STATE["model"].items()}
        state["config"] = {"ema_decay": 0.99}
    for path, value in changes:
        _set(state, path, value)
    p = WORK / "mutated.pt"
    save_checkpoint(state, p)
    _one_result_or_user_error(p)


# ---- safetensors weights and sidecars ----


@pytest.fixture(scope="module")
def exported() -> Path:
    from alexnet.engine.checkpoint import model_from_state
    from alexnet.outputs.export import export_safetensors

    weights, _ = export_safetensors(model_from_state(STATE), WORK / "exported.safetensors")
    return weights


def _pair(exported: Path, weights: bytes | None, meta: dict | bytes | None) -> Path:
    p = WORK / "fuzz.safetensors"
    p.write_bytes(exported.read_bytes() if weights is None else weights)
    side = exported.with_suffix(".json").read_bytes() if meta is None else meta
    p.with_suffix(".json").write_bytes(
        side if isinstance(side, bytes) else json.dumps(side).encode()
    )
    return p


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_as_safetensors(data, exported, memory_budget):
    _one_result_or_user_error(_pair(exported, data, None))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
HEADER_ENTRIES = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I8", "I32", "I64", "BOOL", "F64", "X"]),
        "shape": st.lists(st.integers(-1, 2**40), max_size=4),
        "data_offsets": st.lists(st.integers(-1, 2**40), max_size=3),
    }
)


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["features.conv1.weight", "x", "__metadata__"]),
        HEADER_ENTRIES | JSON,
        max_size=3,
    ),
    raw_header=st.none() | st.binary(max_size=64),
    length_delta=st.integers(-8, 8),
    body=st.binary(max_size=512),
)
def test_a_safetensors_header(header, raw_header, length_delta, body, exported, memory_budget):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    data = struct.pack("<Q", max(0, len(text) + length_delta)) + text + body
    _one_result_or_user_error(_pair(exported, data, None))


SIDECAR_FIELDS = [
    "format", "format_version", "model_name", "model_kwargs", "classes", "preprocessing",
    "model_kwargs.width", "model_kwargs.lrn_size", "classes.0", "preprocessing.resize",
    "preprocessing.input_size", "preprocessing.stats", "preprocessing.stats.std",
    "preprocessing.stats.mean_image", "preprocessing.normalize",
]  # fmt: skip


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(SIDECAR_FIELDS), JSON), min_size=1, max_size=3),
    garbage=st.none() | st.binary(max_size=64),
)
def test_a_sidecar_with_mutated_fields(changes, garbage, exported, memory_budget):
    meta = json.loads(exported.with_suffix(".json").read_text())
    for path, value in changes:
        _set(meta, path, value)
    _one_result_or_user_error(_pair(exported, None, garbage if garbage is not None else meta))


# ---- statistics files ----


def _load_stats(directory: Path) -> None:
    try:
        stats = DatasetStats.load(directory)
    except UserError as e:
        assert "\n" not in str(e).strip(), str(e)
        return
    assert stats is not None


STATS_FIELDS = ["mean", "std", "eigval", "eigvec", "num_images", "source", "mean_image",
                "mean_image.shape", "mean_image.base64", "eigvec.0", "mean.0"]  # fmt: skip


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(STATS_FIELDS), JSON), max_size=3),
    garbage=st.none() | st.binary(max_size=256),
)
def test_a_stats_json(changes, garbage, memory_budget):
    d = WORK / "stats-json"
    d.mkdir(exist_ok=True)
    (d / "mean_image.npy").unlink(missing_ok=True)
    stats = IMAGENET_STATS.to_dict()
    for path, value in changes:
        _set(stats, path, value)
    (d / "stats.json").write_bytes(garbage if garbage is not None else json.dumps(stats).encode())
    _load_stats(d)


NPY_ARRAYS = st.builds(
    lambda dtype, shape: np.zeros(shape, dtype=dtype),
    st.sampled_from(["<f4", ">f8", "<f2", "<i4", "|u1", "|b1", "<c8", "V8"]),
    st.lists(st.integers(0, 6), max_size=4).map(tuple),
)


@FUZZ
@given(
    array=NPY_ARRAYS,
    cut=st.none() | st.integers(0, 400),
    garbage=st.none() | st.binary(max_size=256),
)
def test_a_mean_image_npy(array, cut, garbage, memory_budget):
    d = WORK / "stats-npy"
    d.mkdir(exist_ok=True)
    stats = DatasetStats(
        **{k: getattr(IMAGENET_STATS, k) for k in ("mean", "std", "eigval", "eigvec")}
    )
    stats.mean_image = np.zeros((3, 4, 4), np.float32)
    stats.save(d)
    npy = d / "mean_image.npy"
    if garbage is not None:
        npy.write_bytes(garbage)
    else:
        with open(npy, "wb") as f:
            np.save(f, array)
        if cut is not None:
            npy.write_bytes(npy.read_bytes()[:cut])
    _load_stats(d)
