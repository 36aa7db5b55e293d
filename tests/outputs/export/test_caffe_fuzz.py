"""Fuzz tests of the protobuf reader and of import-caffe (issue 22, items 5 and 10).

Budgets, per input: the protobuf reader on arbitrary bytes (up to 4 KB) answers a result or
a WireError within Hypothesis' 2 s deadline and 2 MB of traced memory; the importer on
mutations of a valid small file (protobuf's encoder, conftest.py ``small_net``: AlexNet's
layout at width NARROW, one-value blobs, ~3 KB) answers a checkpoint or exactly one
one-line UserError naming the file, within a 10 s deadline and 64 MB of traced memory,
and writes nothing when it refuses. The deadlines are generous ceilings (a linear reader
takes milliseconds), not timings.
"""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alexnet.errors import UserError
from alexnet.outputs.export import caffe_proto, import_caffe
from alexnet.outputs.export import protowire as pw

READER_MEMORY, IMPORTER_MEMORY = 2 << 20, 64 << 20


def _read_everything(data: bytes) -> None:
    """Every reader of the module on ``data``: one level, every field typed every way, and
    the Caffe messages; WireError is the only way out."""
    msg = pw.parse(data)
    for number in msg:
        pw.varints(msg, number, signed=True, at_most=16)
        pw.last_int(msg, number, 0)
        pw.string(msg, number)
        for reader in (pw.floats, pw.doubles):
            with contextlib.suppress(pw.WireError):
                reader(msg, number)
        for sub in pw.messages(msg, number)[:4]:
            with contextlib.suppress(pw.WireError):
                pw.parse(sub, keep=(1, 2, 5), budget=pw.Budget(1000))


@settings(max_examples=300, deadline=2000)
@given(data=st.binary(max_size=4096))
def test_protobuf_reader_on_arbitrary_bytes(data):
    tracemalloc.start()
    try:
        for read in (
            _read_everything,
            caffe_proto.parse_net,
            lambda d: caffe_proto.parse_blob(d, check_start=True),
        ):
            try:
                read(data)
            except pw.WireError as e:
                assert "\n" not in str(e)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < READER_MEMORY, peak


def _mutate(data: bytes, ops: list[tuple[str, int, int, bytes]]) -> bytes:
    b = bytearray(data)
    for op, i, j, chunk in ops:
        i, j = i % (len(b) + 1), j % (len(b) + 1)
        i, j = min(i, j), max(i, j)
        if op == "set" and i < len(b):
            b[i] = chunk[0] if chunk else 0xFF
        elif op == "delete":
            del b[i : min(j, i + 64)]
        elif op == "insert":
            b[i:i] = chunk
        elif op == "truncate":
            del b[i:]
        elif op == "duplicate":
            b[i:i] = b[i : min(j, i + 256)]
    return bytes(b)


class BaseFiles(list):
    """(bytes, start, end of fc8's zeros) per layout; a short repr for Hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<small_net files of {[len(d) for d, _, _ in self]} bytes>"


@pytest.fixture(scope="module")
def base_files(caffe, tmp_path_factory):
    """The two layouts of the small valid file, and where their structure is: the offsets
    outside fc8's (1, 512) weight of zeros (2 KB), where most mutations are aimed. Each is
    imported once (refused: one-value blobs), so that the modules the importer loads are
    not counted in the first example's memory."""
    out = BaseFiles()
    for layout in ("layer", "layers"):
        data = caffe.small_net(layout)
        fc8 = 4 * caffe.scaled(4096, caffe.narrow)  # bytes of fc8's (1, fc7's features) zeros
        zeros = data.index(bytes(fc8))
        out.append((data, zeros, zeros + fc8))
        path = tmp_path_factory.mktemp("base") / f"{layout}.caffemodel"
        path.write_bytes(data)
        with pytest.raises(UserError, match="conv1 weight is"):
            import_caffe(path, path.with_suffix(".pt"))
    return out


ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "delete", "insert", "truncate", "duplicate"]),
        st.integers(0, 1 << 16),
        st.integers(0, 1 << 16),
        st.binary(max_size=12)
        | st.sampled_from([b"\xff" * 10 + b"\x01", b"\x80" * 11, b"\x0b", b"\x2a\x05"]),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=80,
    deadline=10_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(which=st.integers(0, 1), aim=st.integers(0, 1 << 16), mutations=ops)
def test_importer_on_mutated_files(base_files, tmp_path_factory, which, aim, mutations):
    data, zeros, end = base_files[which]
    structure = list(range(zeros)) + list(range(end, len(data)))
    # the first mutation's position: on the file's structure (a byte outside fc8's zeros)
    first, *rest = mutations
    mutations = [(first[0], structure[aim % len(structure)], first[2], first[3]), *rest]
    folder = tmp_path_factory.mktemp("fuzz")
    path, out = folder / "m.caffemodel", folder / "out" / "m.pt"
    path.write_bytes(_mutate(data, mutations))
    tracemalloc.start()
    try:
        try:
            import_caffe(path, out)
            result = None
        except UserError as e:
            result = str(e)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if result is None:
        assert out.exists()
    else:
        assert "\n" not in result and str(path) in result, result
        assert not out.parent.exists()
    assert peak < IMPORTER_MEMORY, peak
