"""Caffe's ``.caffemodel`` (a binary NetParameter) and ``.binaryproto`` (a BlobProto),
read with :mod:`protowire` and the field numbers of BVLC Caffe's ``src/caffe/proto/caffe.proto``.

Two layouts of a net exist, and both are read:

    NetParameter.layer  = 100  LayerParameter, ``type`` a string ("Convolution", ...)
    NetParameter.layers = 2    V1LayerParameter (2014), ``type`` an enum (CONVOLUTION = 4);
                               the published bvlc_alexnet.caffemodel is in this one

A blob's shape is ``BlobProto.shape`` (BlobShape.dim) or, in older files, the
legacy ``num/channels/height/width`` (an InnerProduct weight is then
(1, 1, out, in) and a bias (1, 1, 1, out)). Only what an importer needs is kept:
names, types, bottom/top blob names, the blobs, and the parameters of
Convolution, InnerProduct, LRN, Pooling, ReLU and Dropout layers.

A file is read as it is checked (:func:`read_net`): its first record must be a field of a
NetParameter, each layer is parsed when its record has been read, and reading stops at
the first malformed record. What one file may make the reader hold is capped:
``MAX_LAYERS`` layers, ``MAX_RECORDS`` records kept in all, blobs of at most
``MAX_RANK`` axes whose element count (a Python int: no wrap-around) must equal the
values present; blob data stays a view of the bytes read.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from alexnet.errors import printable

from . import protowire as pw

__all__ = [
    "MAX_LAYERS",
    "MAX_RANK",
    "MAX_RECORDS",
    "CaffeBlob",
    "CaffeLayer",
    "CaffeNet",
    "parse_blob",
    "parse_net",
    "read_net",
]

# Limits on what one file may make the reader hold: Caffe's largest published nets have
# ~1,000 layers of ~10 records; an AlexNet has 25 layers, blobs of rank <= 4.
MAX_LAYERS, MAX_RECORDS, MAX_RANK = 10_000, 100_000, 8
MAX_NAME = 100  # characters of a layer's name or type kept (they only appear in messages)

# caffe.proto field numbers ------------------------------------------------------------
NET_NAME, NET_LAYERS_V1, NET_LAYER = 1, 2, 100
# LayerParameter: the *_param fields are messages shared with V1LayerParameter
LAYER = {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7, "convolution": 106,
         "dropout": 108, "inner_product": 117, "lrn": 118, "pooling": 121, "relu": 123}  # fmt: skip
V1 = {"name": 4, "type": 5, "bottom": 2, "top": 3, "blobs": 6, "convolution": 10,
      "dropout": 12, "inner_product": 17, "lrn": 18, "pooling": 19, "relu": 30}  # fmt: skip
V1_V0_LAYER = 1  # V1LayerParameter.layer: a V0LayerParameter (Caffe before 2014)
# V1LayerParameter.LayerType -> LayerParameter's type string
V1_TYPES = {
    1: "Accuracy", 3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout", 8: "Flatten",
    12: "ImageData", 14: "InnerProduct", 15: "LRN", 17: "Pooling", 18: "ReLU", 19: "Sigmoid",
    20: "Softmax", 21: "SoftmaxWithLoss", 22: "Split", 23: "TanH", 24: "WindowData",
    29: "MemoryData", 32: "DummyData", 33: "Slice", 39: "Deconvolution",
}  # fmt: skip
# BlobProto: num 1, channels 2, height 3, width 4, data 5 (packed float), shape 7
# (BlobShape: dim 1, packed int64), double_data 8
BLOB_LEGACY, BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE = (1, 2, 3, 4), 5, 7, 8
BLOB_KEEP = (*BLOB_LEGACY, BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE)
# The wire types of every field of a NetParameter (name 1, layers 2, input 3, input_dim 4,
# force_backward 5, state 6, debug_info 7, input_shape 8, layer 100) and of a BlobProto
# (num .. width 1-4, data 5, diff 6, shape 7, double_data 8, double_diff 9): a file's
# first record must be one of them.
NET_FIELDS = {1: {pw.LEN}, 2: {pw.LEN}, 3: {pw.LEN}, 4: {pw.VARINT, pw.LEN}, 5: {pw.VARINT},
              6: {pw.LEN}, 7: {pw.VARINT}, 8: {pw.LEN}, 100: {pw.LEN}}  # fmt: skip
BLOB_FIELDS = {1: {pw.VARINT}, 2: {pw.VARINT}, 3: {pw.VARINT}, 4: {pw.VARINT},
               5: {pw.LEN, pw.FIXED32}, 6: {pw.LEN, pw.FIXED32}, 7: {pw.LEN},
               8: {pw.LEN, pw.FIXED64}, 9: {pw.LEN, pw.FIXED64}}  # fmt: skip


def check_first_record(number: int, wire: int, fields: dict, what: str) -> None:
    """WireError unless a record of field ``number``, wire type ``wire`` can open a ``what``."""
    if wire not in fields.get(number, ()):
        raise pw.WireError(
            f"it does not start like a {what}: its first record is field {number} "
            f"(wire type {wire}), which a {what} does not have"
        )


def _short(text: str) -> str:
    """A name from the file as messages show it: control characters escaped (a newline
    would split the one-line error), at most ``MAX_NAME`` characters."""
    return printable(text[:MAX_NAME] + ("..." if len(text) > MAX_NAME else ""))


@dataclass
class CaffeBlob:
    shape: tuple[int, ...]
    data: np.ndarray  # float32, flat, read-only (a view of the file's bytes)


@dataclass
class CaffeLayer:
    name: str
    type: str  # LayerParameter's spelling: "Convolution", "InnerProduct", "LRN", ...
    bottoms: list[str]
    tops: list[str]
    blobs: list[CaffeBlob]
    params: dict = field(default_factory=dict)  # this type's parameters, defaults filled in


@dataclass
class CaffeNet:
    name: str
    layout: str  # "layer" (LayerParameter) or "layers" (V1LayerParameter)
    layers: list[CaffeLayer]


def _shape(msg: pw.Message, budget: pw.Budget | None) -> tuple[int, ...]:
    shapes = pw.messages(msg, BLOB_SHAPE)
    if shapes:
        merged = shapes[0] if len(shapes) == 1 else b"".join(bytes(m) for m in shapes)
        shape_msg = pw.parse(merged, keep=(1,), budget=budget)  # BlobShape: dim 1
        dims = pw.varints(shape_msg, 1, signed=True, at_most=MAX_RANK)
    else:
        dims = [pw.last_int(msg, f, 0, signed=True) for f in BLOB_LEGACY]
    if len(dims) > MAX_RANK:
        raise pw.WireError(f"a blob of more than {MAX_RANK} axes")
    if any(d < 0 for d in dims):
        raise pw.WireError(f"a blob of shape {tuple(dims)}: a negative size")
    return tuple(dims)


def parse_blob(
    payload: bytes | memoryview, budget: pw.Budget | None = None, *, check_start: bool = False
) -> CaffeBlob:
    """A BlobProto; WireError if its shape is not one (rank <= ``MAX_RANK``, no negative
    sizes) or its data does not fill it. ``check_start``: the bytes are a whole file,
    whose first record must be a BlobProto field."""
    if check_start and len(payload):
        key, _ = pw.read_varint(memoryview(payload).cast("B"), 0, len(payload))
        check_first_record(key >> 3, key & 7, BLOB_FIELDS, "BlobProto")
    msg = pw.parse(payload, keep=BLOB_KEEP, budget=budget)
    shape = _shape(msg, budget)
    data = pw.floats(msg, BLOB_DATA)
    if not len(data):
        data = pw.doubles(msg, BLOB_DOUBLE).astype(np.float32)
    count = math.prod(shape)  # a Python int: (2**32, 2**32) is 2**64, not 0
    if len(data) != count:
        raise pw.WireError(f"a blob of shape {shape} holds {len(data):,} values, not {count:,}")
    return CaffeBlob(shape, data)


def _pair(msg: pw.Message, single: int, h: int, w: int, default: int) -> tuple[int, int]:
    """(height, width) from ``*_h``/``*_w`` if set, else the repeated (or single) field."""
    if h in msg or w in msg:
        return pw.last_int(msg, h, default), pw.last_int(msg, w, default)
    values = pw.varints(msg, single, at_most=2)
    if not values:
        return default, default
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _conv(m: pw.Message) -> dict:
    # ConvolutionParameter: num_output 1, bias_term 2, pad 3, kernel_size 4, group 5,
    # stride 6, pad_h/w 9/10, kernel_h/w 11/12, stride_h/w 13/14, dilation 18
    return {
        "num_output": pw.last_int(m, 1, 0),
        "bias_term": bool(pw.last_int(m, 2, 1)),
        "pad": _pair(m, 3, 9, 10, 0),
        "kernel": _pair(m, 4, 11, 12, 0),
        "stride": _pair(m, 6, 13, 14, 1),
        "group": pw.last_int(m, 5, 1),
        "dilation": tuple(pw.varints(m, 18, at_most=3)) or (1,),
    }


def _pooling(m: pw.Message) -> dict:
    # PoolingParameter: pool 1 (MAX 0, AVE 1, STOCHASTIC 2), kernel_size 2, stride 3,
    # pad 4, kernel_h/w 5/6, stride_h/w 7/8, pad_h/w 9/10, global_pooling 12
    return {
        "pool": {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}.get(pw.last_int(m, 1, 0), "?"),
        "kernel": _pair(m, 2, 5, 6, 0),
        "stride": _pair(m, 3, 7, 8, 1),
        "pad": _pair(m, 4, 9, 10, 0),
        "global": bool(pw.last_int(m, 12, 0)),
    }


def _lrn(m: pw.Message) -> dict:
    # LRNParameter: local_size 1 [5], alpha 2 [1.], beta 3 [0.75], norm_region 4
    # (ACROSS_CHANNELS 0, WITHIN_CHANNEL 1), k 5 [1.]
    return {
        "local_size": pw.last_int(m, 1, 5),
        "alpha": pw.last_float(m, 2, 1.0),
        "beta": pw.last_float(m, 3, 0.75),
        "region": {0: "ACROSS_CHANNELS", 1: "WITHIN_CHANNEL"}.get(pw.last_int(m, 4, 0), "?"),
        "k": pw.last_float(m, 5, 1.0),
    }


_PARAMS = {
    # type -> (the *_param field's key in LAYER/V1, its reader)
    "Convolution": ("convolution", _conv),
    # InnerProductParameter: num_output 1, bias_term 2, axis 5, transpose 6
    "InnerProduct": ("inner_product", lambda m: {
        "num_output": pw.last_int(m, 1, 0), "bias_term": bool(pw.last_int(m, 2, 1)),
        "axis": pw.last_int(m, 5, 1, signed=True), "transpose": bool(pw.last_int(m, 6, 0))}),
    "LRN": ("lrn", _lrn),
    "Pooling": ("pooling", _pooling),
    # ReLUParameter: negative_slope 1 [0]; DropoutParameter: dropout_ratio 1 [0.5]
    "ReLU": ("relu", lambda m: {"negative_slope": pw.last_float(m, 1, 0.0)}),
    "Dropout": ("dropout", lambda m: {"ratio": pw.last_float(m, 1, 0.5)}),
}  # fmt: skip


def _layer(
    payload: memoryview, fields: dict, v1: bool, budget: pw.Budget, where: int
) -> CaffeLayer:
    try:
        keep = {*fields.values(), V1_V0_LAYER} if v1 else set(fields.values())
        msg = pw.parse(payload, where, keep=keep, budget=budget)
    except pw.WireError as e:
        raise pw.WireError(f"the layer at byte {where:,}: {e}") from None
    name = _short(pw.string(msg, fields["name"], "?"))
    try:
        if v1:
            if V1_V0_LAYER in msg:
                raise pw.WireError(
                    "written in Caffe's V0 format (before 2014); convert the file with "
                    "Caffe's upgrade_net_proto_binary first"
                )
            code = pw.last_int(msg, fields["type"], 0)
            kind = V1_TYPES.get(code, f"V1 type {code}")
        else:
            kind = _short(pw.string(msg, fields["type"], "?"))
        bottoms = [bytes(b).decode("utf-8", "replace") for b in pw.messages(msg, fields["bottom"])]
        tops = [bytes(t).decode("utf-8", "replace") for t in pw.messages(msg, fields["top"])]
        blobs = [parse_blob(b, budget) for b in pw.messages(msg, fields["blobs"])]
        params = {}
        if kind in _PARAMS:
            key, read = _PARAMS[kind]
            sub = pw.messages(msg, fields[key])
            merged = sub[0] if len(sub) == 1 else b"".join(bytes(s) for s in sub)  # proto2 merge
            params = read(pw.parse(merged, budget=budget))
    except pw.WireError as e:
        raise pw.WireError(f"layer {name!r} at byte {where:,}: {e}") from None
    return CaffeLayer(name, kind, bottoms, tops, blobs, params)


def read_net(f: BinaryIO, size: int) -> CaffeNet:
    """The NetParameter filling the open file ``f`` (``size`` bytes), in either layout,
    read layer by layer; WireError at the first record that is not one."""
    budget, name, layout, layers = pw.Budget(MAX_RECORDS), "", None, []

    def check_first(number: int, wire: int) -> None:
        check_first_record(number, wire, NET_FIELDS, "NetParameter")

    keep = (NET_NAME, *_LAYOUTS)
    for number, wire, payload, start in pw.records(f, size, keep=keep, check_first=check_first):
        if wire != pw.LEN or payload is None:
            continue
        if number == NET_NAME:
            name = _short(bytes(payload).decode("utf-8", "replace"))
            continue
        if layout not in (None, _LAYOUTS[number]):
            raise pw.WireError("the net has layers in both the 'layer' and the V1 'layers' field")
        layout = _LAYOUTS[number]
        if len(layers) == MAX_LAYERS:
            raise pw.WireError(f"more than {MAX_LAYERS:,} layers (byte {start:,})")
        budget.take()
        v1 = number == NET_LAYERS_V1
        layers.append(_layer(payload, V1 if v1 else LAYER, v1, budget, start))
    return CaffeNet(name, layout or "layers", layers)


_LAYOUTS = {NET_LAYER: "layer", NET_LAYERS_V1: "layers"}


def parse_net(data: bytes | memoryview) -> CaffeNet:
    """A NetParameter in either layout from its bytes; WireError when they are not one."""
    return read_net(io.BytesIO(data), len(data))
