"""import-caffe on hostile files (issue 22, item 5): each finding as a regression test.

Files are written by protobuf's encoder (conftest.py) and edited at the byte level where
protobuf refuses to write what an attacker can: ``small_net`` is AlexNet's layout at width
NARROW with one-value blobs (~3 KB), which passes the layout checks and reaches the shape
checks.
Work is measured by counting varint reads, memory with tracemalloc; no wall-clock asserts.
"""

from __future__ import annotations

import io
import subprocess
import tracemalloc

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.errors import UserError
from alexnet.outputs.export import caffe_proto, import_caffe
from alexnet.outputs.export import protowire as pw
from alexnet.outputs.export.caffe_weights import read_mean

NET_LAYER, BLOBS = 100, 7  # NetParameter.layer, LayerParameter.blobs


def rebuild(caffe, net: bytes, edits: dict) -> bytes:
    """``net`` (today's layout) with each layer named in ``edits`` replaced by
    ``edits[name](layer)`` (a LayerParameter -> its new bytes), record by record."""
    out = []
    for layer in caffe.pb.NetParameter.FromString(net).layer:
        raw = edits[layer.name](layer) if layer.name in edits else layer.SerializeToString()
        out.append(caffe.record(NET_LAYER, raw))
    return b"".join(out)


def with_blobs(caffe, *blobs: bytes):
    """An edit: the layer's blobs replaced by these BlobProto bytes."""

    def edit(layer) -> bytes:
        del layer.blobs[:]
        return layer.SerializeToString() + b"".join(caffe.record(BLOBS, b) for b in blobs)

    return edit


def blob_bytes(caffe, dims: list[int], data: bytes) -> bytes:
    """A BlobProto: BlobShape ``dims`` (packed) and a packed float field of these bytes."""
    shape = caffe.pb.BlobShape(dim=dims).SerializeToString()
    return caffe.record(7, shape) + caffe.record(5, data)


def unit_dims_blob(caffe, n: int, packed: bool) -> bytes:
    """A blob of shape (1,) * n holding one value: the issue's quadratic file."""
    # BlobShape.dim packed (one int64 a byte), or unpacked (a tag per dim)
    shape = caffe.record(1, b"\x01" * n) if packed else b"\x08\x01" * n
    return caffe.record(7, shape) + caffe.record(5, np.float32(1).tobytes())


def one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alexnet: error: "), r.stderr
    return lines[0]


def _odd_float_field(caffe):
    # a packed float field of 5 bytes (protobuf's encoder refuses to write one)
    return {
        "conv1": with_blobs(
            caffe, blob_bytes(caffe, [1], b"\0" * 5), blob_bytes(caffe, [1], b"\0" * 4)
        )
    }


def _four_d_bias(caffe):
    weight = blob_bytes(caffe, [12, 3, 11, 11], bytes(4 * 12 * 3 * 121))  # conv1 at NARROW
    return {"conv1": with_blobs(caffe, weight, blob_bytes(caffe, [2, 6, 1, 1], bytes(4 * 12)))}


def _num_output_2_64(caffe):
    def edit(layer) -> bytes:  # a second inner_product_param: proto2 merges, the last wins
        return layer.SerializeToString() + caffe.record(117, b"\x08" + caffe.varint(2**64 - 1))

    return {"fc8": edit}


def _wrapping_count(caffe):
    # (2^32, 2^32): 2^64 values, which an int64 product wraps to 0, matching no data
    return {
        "conv1": with_blobs(
            caffe, blob_bytes(caffe, [2**32, 2**32], b""), blob_bytes(caffe, [1], bytes(4))
        )
    }


@pytest.mark.parametrize(
    "edits, message",
    [
        (_odd_float_field, "layer 'conv1' at byte [0-9,]+: field 5: a packed float field "
                           r"of 5 bytes, not a multiple of 4\)$"),
        (_four_d_bias, r"conv1 bias is \(2, 6, 1, 1\), AlexNet's conv1 \(width 0.125\) "
                       r"\(12,\); "),
        (_num_output_2_64, "fc8 has num_output 18446744073709551615 and a weight blob "
                           r"of shape \(1, 512\)"),
        (_wrapping_count, r"a blob of shape \(4294967296, 4294967296\) holds 0 values, "
                          r"not 18,446,744,073,709,551,616\)$"),
    ],
    ids=["packed-float-5-bytes", "4d-bias", "num-output-2^64-1", "count-wraps"],
)  # fmt: skip
def test_tracebacks_are_one_line_naming_the_file(run_cli, caffe, tmp_path, edits, message):
    """Three inputs that gave tracebacks (ValueError, IndexError, TypeError from torch), and
    the count that wrapped to 0, through the CLI: one line, exit 1, nothing written."""
    import re

    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(rebuild(caffe, caffe.small_net(), edits(caffe)))
    out = tmp_path / "out" / "x.pt"
    line = one_line(run_cli("import-caffe", str(bad), "--out", str(out)))
    assert str(bad) in line and re.search(message, line), line
    assert not out.parent.exists()


def _count_varints(monkeypatch) -> list[int]:
    calls = [0]
    read = pw.read_varint

    def counting(buf, pos, end):
        calls[0] += 1
        return read(buf, pos, end)

    monkeypatch.setattr(pw, "read_varint", counting)
    return calls


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_unit_dims_cost_linear_work(caffe, tmp_path, monkeypatch, packed):
    """A blob of shape (1,) * n took time quadratic in n (400 KB: 149 s). Now it is refused
    at the ninth axis; the varints read grow at most linearly: doubling n at most doubles
    the work (packed: it does not grow at all)."""
    calls = _count_varints(monkeypatch)
    work = {}
    for n in (100_000, 200_000):  # 200,000 packed dims: the 400 KB file
        blob = unit_dims_blob(caffe, n, packed)
        path = tmp_path / f"dims{n}.caffemodel"
        path.write_bytes(rebuild(caffe, caffe.small_net(), {"conv1": with_blobs(caffe, blob)}))
        calls[0] = 0
        with pytest.raises(UserError) as e:
            import_caffe(path, tmp_path / "x.pt")
        work[n] = calls[0]
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        if packed:
            assert "a blob of more than 8 axes" in str(e.value)
        else:  # 2 varints a record: the record budget stops it first
            assert "more than 100,000 records" in str(e.value)
    print(f"varints read: {work}")
    assert work[200_000] <= 2.1 * work[100_000]
    if packed:
        assert work[200_000] == work[100_000] < 2_000


def _peak(fn) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        fn()
        raised = None
    except (pw.WireError, UserError) as e:
        raised = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def test_empty_layer_records_take_bounded_memory(caffe):
    """3-byte empty layer records cost 228x their size (a CaffeLayer each). Now a file holds
    at most 10,000 layers: 1,000,000 of them (3 MB) are refused at the 10,001st, in
    under 16 MB (the old reader: ~680 MB); exactly 10,000 are read in under 16 MB."""
    empty = caffe.record(NET_LAYER, b"")
    assert len(empty) == 3
    peak, raised = _peak(lambda: caffe_proto.parse_net(empty * 1_000_000))
    assert isinstance(raised, pw.WireError) and "more than 10,000 layers" in str(raised)
    assert peak < 16 << 20, peak
    peak, raised = _peak(lambda: caffe_proto.parse_net(empty * caffe_proto.MAX_LAYERS))
    assert raised is None and peak < 16 << 20, peak


def test_many_small_records_in_one_layer_take_bounded_memory(caffe):
    """One layer of 1,000,000 empty ``bottom`` strings (2 MB; a memoryview and a tuple each,
    ~120x): refused once 100,000 records are kept, in under 64 MB."""
    layer = caffe.pb.LayerParameter(name="x", type="ReLU").SerializeToString()
    data = caffe.record(NET_LAYER, layer + b"\x1a\x00" * 1_000_000)
    peak, raised = _peak(lambda: caffe_proto.parse_net(data))
    assert isinstance(raised, pw.WireError) and "more than 100,000 records" in str(raised)
    assert peak < 64 << 20, peak


class CountingReader(io.BytesIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, n=-1):
        data = super().read(n)
        self.read_bytes += len(data)
        return data


def test_the_file_is_checked_as_it_is_read(caffe):
    """The whole file was read before its first byte was checked. Now a file whose first
    record is not a NetParameter field is refused after its first bytes, and reading stops
    at the first malformed record."""
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(10 << 20)
    f = CountingReader(jpeg)
    with pytest.raises(pw.WireError, match="does not start like a NetParameter"):
        caffe_proto.read_net(f, len(jpeg))
    assert f.read_bytes < 16
    good = caffe.small_net()
    first = caffe.pb.NetParameter.FromString(good).layer[0].SerializeToString()
    data = caffe.record(NET_LAYER, first) + b"\x0b" + bytes(10 << 20)  # a group: wire type 3
    f = CountingReader(data)
    with pytest.raises(pw.WireError, match=r"corrupt: wire type 3 \(field 1\) at byte"):
        caffe_proto.read_net(f, len(data))
    assert f.read_bytes < len(first) + 16


def test_a_huge_file_that_is_no_caffemodel_is_refused_at_once(run_cli, tmp_path):
    """A 4 GB (sparse) file starting like a JPEG: read_bytes() took 4 GB of memory before
    anything was checked; now one line after its first bytes."""
    big = tmp_path / "photo.caffemodel"
    with big.open("wb") as f:
        f.write(b"\xff\xd8\xff\xe0\x00\x10JFIF")
        f.truncate(4 << 30)
    line = one_line(run_cli("import-caffe", str(big), "--out", str(tmp_path / "x.pt")))
    assert (
        f"{big} is not a readable Caffe NetParameter (it does not start like a NetParameter" in line
    )
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    "dims, data, message",
    [
        ([1] * 9, bytes(4), "a blob of more than 8 axes"),
        ([-1, -3], bytes(12), r"a blob of shape \(-1, -3\): a negative size"),
        ([2, 2], bytes(12), r"a blob of shape \(2, 2\) holds 3 values, not 4"),
    ],
)
def test_blob_shapes_are_checked(caffe, dims, data, message):
    with pytest.raises(pw.WireError, match=message):
        caffe_proto.parse_blob(blob_bytes(caffe, dims, data))


def test_non_finite_weights_and_constants_are_named(caffe, tmp_path):
    def nan_blob(blob):
        caffe.fill_blob(blob, np.full(1, np.nan, np.float32), legacy=False)

    path = tmp_path / "nan.caffemodel"
    path.write_bytes(caffe.small_net(blobs={("fc8", 1): nan_blob}))
    with pytest.raises(UserError, match="fc8 bias holds 1 NaN or infinite values"):
        import_caffe(path, tmp_path / "x.pt")
    net = caffe.pb.NetParameter.FromString(caffe.small_net())
    for layer in net.layer:
        if layer.type == "LRN":
            layer.lrn_param.alpha = float("inf")
    path.write_bytes(net.SerializeToString())
    with pytest.raises(
        UserError, match="norm1 has alpha inf beta 0.75 k 1.0: AlexNet's are finite"
    ):
        import_caffe(path, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_mean_files_are_checked(caffe, tmp_path):
    """``--mean``: a file bigger than a mean image can be, one that does not start like a
    BlobProto, and a blob of rank 9: one line each, naming the file."""
    mean = tmp_path / "mean.binaryproto"
    with mean.open("wb") as f:  # sparse
        f.truncate(17 << 20)
    with pytest.raises(UserError, match=f"mean file {mean} is 17,825,792 bytes; .* under 16 MB"):
        read_mean(mean)
    mean.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(
        UserError, match="not a Caffe BlobProto .it does not start like a BlobProto"
    ):
        read_mean(mean)
    mean.write_bytes(blob_bytes(caffe, [1] * 9, bytes(4)))
    with pytest.raises(UserError, match=r"not a Caffe BlobProto \(a blob of more than 8 axes\)$"):
        read_mean(mean)


def test_names_with_control_characters_stay_on_one_line(caffe, tmp_path):
    """A layer name is printed in errors: its newline is escaped, not printed."""
    net = caffe.pb.NetParameter.FromString(caffe.small_net())
    for layer in net.layer:
        if layer.name == "conv1":
            layer.name = "conv1\nalexnet: error: forged"
    path = tmp_path / "names.caffemodel"
    path.write_bytes(net.SerializeToString())
    with pytest.raises(UserError) as e:
        import_caffe(path, tmp_path / "x.pt")
    assert "\n" not in str(e.value)
    assert "conv1\\nalexnet: error: forged weight is (1,)" in str(e.value)


def test_out_or_mean_naming_the_caffemodel_is_refused(caffe, tmp_path, capsys):
    """`--out` naming the caffemodel itself would have replaced the download by the
    checkpoint (an atomic rename over it): exit 2, the file untouched."""
    path = tmp_path / "bvlc.caffemodel"
    path.write_bytes(caffe.small_net())
    before = path.read_bytes()
    assert main(["import-caffe", str(path), "--out", str(tmp_path / "." / path.name)]) == 2
    assert "is the caffemodel" in capsys.readouterr().err
    assert (
        main(["import-caffe", str(path), "--out", str(tmp_path / "x.pt"), "--mean", str(path)]) == 2
    )
    assert path.read_bytes() == before and not (tmp_path / "x.pt").exists()


def test_class_names_that_are_not_text(caffe, tmp_path, capsys):
    path = tmp_path / "net.caffemodel"
    path.write_bytes(caffe.small_net())
    names = tmp_path / "names.txt"
    names.write_bytes(b"cat\n\xff\xfe dog\n")
    args = ["import-caffe", str(path), "--out", str(tmp_path / "x.pt"), "--classes", str(names)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--classes {names} is not UTF-8 text (byte 4)" in err, err
