"""The wire-format reader against protobuf's own encoder (the schema in conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet.outputs.export import caffe_proto
from alexnet.outputs.export import protowire as pw


def test_packed_blob_with_shape(caffe):
    blob = caffe.pb.BlobProto()
    blob.shape.dim.extend([2, 9216])  # 9216: a two-byte varint
    blob.data.extend(np.arange(2 * 9216, dtype=np.float32).tolist())
    parsed = caffe_proto.parse_blob(blob.SerializeToString())
    assert parsed.shape == (2, 9216) and parsed.data.dtype == np.float32
    np.testing.assert_array_equal(parsed.data, np.arange(2 * 9216))


def test_unpacked_floats_are_gathered(caffe):
    values = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    blob = caffe.pb.UnpackedBlobProto()
    blob.shape.dim.append(5000)
    blob.data.extend(values.tolist())
    raw = blob.SerializeToString()
    assert len(raw) > 5 * 5000  # one tag byte per value: really unpacked
    parsed = caffe_proto.parse_blob(raw)
    np.testing.assert_array_equal(parsed.data, values)


def test_runs_of_different_fixed32_fields_stay_apart(caffe):
    layer = caffe.pb.V1LayerParameter(name="fc6", blobs_lr=[1.0, 2.0], weight_decay=[1.0, 0.0])
    msg = pw.parse(layer.SerializeToString())
    assert pw.floats(msg, 7).tolist() == [1.0, 2.0]
    assert pw.floats(msg, 8).tolist() == [1.0, 0.0]
    assert pw.string(msg, 4) == "fc6"


def test_negative_int64_and_legacy_dims(caffe):
    shape = caffe.pb.BlobShape(dim=[-1, 3])
    assert pw.varints(pw.parse(shape.SerializeToString()), 1, signed=True) == [-1, 3]
    blob = caffe.pb.BlobProto(num=1, channels=1, height=2, width=3, data=[0, 1, 2, 3, 4, 5])
    assert caffe_proto.parse_blob(blob.SerializeToString()).shape == (1, 1, 2, 3)


def test_float_fields_read_as_written(caffe):
    lrn = caffe.pb.LRNParameter(local_size=5, alpha=1e-4, beta=0.75)
    msg = pw.parse(lrn.SerializeToString())
    assert pw.last_float(msg, 2, 1.0) == 0.0001  # not 9.99999974738e-05
    assert pw.last_float(msg, 5, 1.0) == 1.0  # k unset: the default


def test_repeated_sub_messages_merge(caffe):
    """proto2: a message field given twice is the merge of both (here lrn_param)."""
    a = caffe.pb.LayerParameter(name="norm1", type="LRN", lrn_param={"local_size": 3})
    b = caffe.pb.LayerParameter(lrn_param={"alpha": 0.5})
    layer = a.SerializeToString() + b.SerializeToString()
    net = b"\xa2\x06" + bytes([len(layer)]) + layer  # field 100, wire type 2; len < 128
    assert caffe.pb.NetParameter.FromString(net).layer[0].lrn_param.alpha == 0.5
    (parsed,) = caffe_proto.parse_net(net).layers
    assert (parsed.params["local_size"], parsed.params["alpha"]) == (3, 0.5)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x08\x96", "truncated: a varint"),  # field 1 varint, continuation bit, then nothing
        (b"\x0a\x05abc", "truncated: field 1 at byte 0 claims 5 bytes, 3 remain"),
        (b"\x0d\x00\x00", "truncated: field 1"),  # fixed32 with 2 of 4 bytes
        (b"\x0b", "corrupt: wire type 3"),
        (b"\x00", "corrupt: field number 0"),
    ],
)
def test_malformed_bytes(data, message):
    with pytest.raises(pw.WireError, match=message):
        pw.parse(data)


def test_v0_layers_are_named():
    v1_layer = b"\x22\x03fc6" + b"\x0a\x00"  # name "fc6", and a V0LayerParameter (field 1)
    net = b"\x12" + bytes([len(v1_layer)]) + v1_layer  # NetParameter.layers (field 2)
    with pytest.raises(pw.WireError, match="layer 'fc6' at byte 0: written in Caffe's V0 format"):
        caffe_proto.parse_net(net)
