"""Caffe files written by the real protobuf encoder, and Caffe's layers written from their
definitions, for the import-caffe tests.

The message classes are built here from a FileDescriptorProto with the field numbers of
BVLC Caffe's ``src/caffe/proto/caffe.proto`` (only the fields AlexNet's files use), so the
files are what Caffe's own serializer would write. The reference forward follows Caffe's
layers in float64: convolution with ``group``, ReLU, LRN across channels
(``lrn_layer.cpp``: ``x * (k + alpha / n * window sum of x^2) ** -beta``, zero-padded,
the window over all channels), max pooling with Caffe's ceil rounding, inner product.

Nets are built at width NARROW (the model's ``width`` option: conv1..conv5 12, 32, 48, 48,
32 maps, fc6/fc7 512 features; a 3.6 MB caffemodel) unless a test asks for width 1.0,
the published bvlc_alexnet's sizes (a 233 MB caffemodel).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch.nn import functional as F

NARROW = 0.125  # width 1/8: a 3.6 MB caffemodel
FC = 4096  # fc6's and fc7's features at width 1
# Caffe's AlexNet at width 1: conv -> (out, in per group, kernel, stride, pad, group)
CONVS = {
    "conv1": (96, 3, 11, 4, 0, 1),
    "conv2": (256, 48, 5, 1, 2, 2),
    "conv3": (384, 256, 3, 1, 1, 1),
    "conv4": (384, 192, 3, 1, 1, 2),
    "conv5": (256, 192, 3, 1, 1, 2),
}
V1_TYPE = {"Convolution": 4, "Dropout": 6, "InnerProduct": 14, "LRN": 15, "Pooling": 17,
           "ReLU": 18, "SoftmaxWithLoss": 21, "Data": 5}  # fmt: skip


def scaled(channels: int, width: float) -> int:
    """The model's width rounding: ``channels`` x ``width`` to an even count, at least 2."""
    return max(2, 2 * round(channels * width / 2))


def convs(width: float) -> dict[str, tuple[int, ...]]:
    """CONVS at ``width``: each conv's out scaled, its in per group the previous out / group."""
    out, previous = {}, 3
    for name, (o, _, k, s, p, g) in CONVS.items():
        out[name] = (scaled(o, width), previous // g, k, s, p, g)
        previous = out[name][0]
    return out


def _schema():
    """caffe.proto's messages (a subset, the same field numbers) as protobuf classes."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fd = descriptor_pb2.FieldDescriptorProto
    opt, rep = fd.LABEL_OPTIONAL, fd.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe_test.proto", package="caffe")

    def message(name, *fields, enums=()):
        m = fdp.message_type.add(name=name)
        for ename, values in enums:
            e = m.enum_type.add(name=ename)
            for vname, number in values:
                e.value.add(name=vname, number=number)
        for fname, number, ftype, label, *extra in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            for x in extra:
                if x == "packed":
                    f.options.packed = True
                else:
                    f.type_name = x
        return m

    T = fd  # field types
    message("BlobShape", ("dim", 1, T.TYPE_INT64, rep, "packed"))
    message(
        "BlobProto",
        ("shape", 7, T.TYPE_MESSAGE, opt, ".caffe.BlobShape"),
        ("data", 5, T.TYPE_FLOAT, rep, "packed"),
        ("num", 1, T.TYPE_INT64, opt),
        ("channels", 2, T.TYPE_INT64, opt),
        ("height", 3, T.TYPE_INT64, opt),
        ("width", 4, T.TYPE_INT64, opt),
    )
    # the same message with its data unpacked (one tag per value), for the reader's tests
    message(
        "UnpackedBlobProto",
        ("shape", 7, T.TYPE_MESSAGE, opt, ".caffe.BlobShape"),
        ("data", 5, T.TYPE_FLOAT, rep),
    )
    message(
        "ConvolutionParameter",
        ("num_output", 1, T.TYPE_UINT32, opt),
        ("bias_term", 2, T.TYPE_BOOL, opt),
        ("pad", 3, T.TYPE_UINT32, rep),
        ("kernel_size", 4, T.TYPE_UINT32, rep),
        ("group", 5, T.TYPE_UINT32, opt),
        ("stride", 6, T.TYPE_UINT32, rep),
    )
    message("InnerProductParameter", ("num_output", 1, T.TYPE_UINT32, opt))
    message(
        "LRNParameter",
        ("local_size", 1, T.TYPE_UINT32, opt),
        ("alpha", 2, T.TYPE_FLOAT, opt),
        ("beta", 3, T.TYPE_FLOAT, opt),
        ("norm_region", 4, T.TYPE_ENUM, opt, ".caffe.LRNParameter.NormRegion"),
        ("k", 5, T.TYPE_FLOAT, opt),
        enums=[("NormRegion", [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)])],
    )
    message(
        "PoolingParameter",
        ("pool", 1, T.TYPE_ENUM, opt, ".caffe.PoolingParameter.PoolMethod"),
        ("kernel_size", 2, T.TYPE_UINT32, opt),
        ("stride", 3, T.TYPE_UINT32, opt),
        enums=[("PoolMethod", [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)])],
    )
    message("DropoutParameter", ("dropout_ratio", 1, T.TYPE_FLOAT, opt))
    message("ReLUParameter", ("negative_slope", 1, T.TYPE_FLOAT, opt))
    params = [
        ("convolution_param", ".caffe.ConvolutionParameter"),
        ("dropout_param", ".caffe.DropoutParameter"),
        ("inner_product_param", ".caffe.InnerProductParameter"),
        ("lrn_param", ".caffe.LRNParameter"),
        ("pooling_param", ".caffe.PoolingParameter"),
        ("relu_param", ".caffe.ReLUParameter"),
    ]
    new_numbers, v1_numbers = (106, 108, 117, 118, 121, 123), (10, 12, 17, 18, 19, 30)
    message(
        "LayerParameter",
        ("name", 1, T.TYPE_STRING, opt),
        ("type", 2, T.TYPE_STRING, opt),
        ("bottom", 3, T.TYPE_STRING, rep),
        ("top", 4, T.TYPE_STRING, rep),
        ("blobs", 7, T.TYPE_MESSAGE, rep, ".caffe.BlobProto"),
        *[
            (n, num, T.TYPE_MESSAGE, opt, t)
            for (n, t), num in zip(params, new_numbers, strict=True)
        ],
    )
    message(
        "V1LayerParameter",
        ("bottom", 2, T.TYPE_STRING, rep),
        ("top", 3, T.TYPE_STRING, rep),
        ("name", 4, T.TYPE_STRING, opt),
        ("type", 5, T.TYPE_ENUM, opt, ".caffe.V1LayerParameter.LayerType"),
        ("blobs", 6, T.TYPE_MESSAGE, rep, ".caffe.BlobProto"),
        ("blobs_lr", 7, T.TYPE_FLOAT, rep),  # unpacked, as in the 2014 files
        ("weight_decay", 8, T.TYPE_FLOAT, rep),
        *[(n, num, T.TYPE_MESSAGE, opt, t) for (n, t), num in zip(params, v1_numbers, strict=True)],
        enums=[("LayerType", [("NONE", 0), *sorted(V1_TYPE.items(), key=lambda kv: kv[1])])],
    )
    message(
        "NetParameter",
        ("name", 1, T.TYPE_STRING, opt),
        ("layers", 2, T.TYPE_MESSAGE, rep, ".caffe.V1LayerParameter"),
        ("input", 3, T.TYPE_STRING, rep),
        ("input_dim", 4, T.TYPE_INT32, rep),
        ("layer", 100, T.TYPE_MESSAGE, rep, ".caffe.LayerParameter"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    names = [m.name for m in fdp.message_type]
    return types.SimpleNamespace(
        **{
            n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{n}"))
            for n in names
        }
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def fill_blob(blob, array: np.ndarray, legacy: bool) -> None:
    """Shape (BlobShape, or num/channels/height/width padded with leading 1s) and data.

    Large arrays enter through ``MergeFromString`` of their packed encoding (decoded and
    checked by protobuf in C; a Python list of 38M floats would take a GB and a minute);
    the file itself is always written by protobuf's serializer."""
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
    else:
        blob.shape.dim.extend(array.shape)
    flat = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    if flat.size < 1 << 20:
        blob.data.extend(flat.tolist())
    else:
        raw = flat.tobytes()
        blob.MergeFromString(b"\x2a" + _varint(len(raw)) + raw)  # field 5, wire type 2
        assert blob.data[0] == flat[0] and blob.data[-1] == flat[-1]


def caffe_weights(
    num_classes: int, seed: int = 0, width: float = NARROW
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """AlexNet's blobs at ``width`` in Caffe's layout (conv1 reads BGR), He-normal so that
    activations keep their 0-255 scale through the net and LRN matters."""
    rng = np.random.default_rng(seed)
    conv, fc = convs(width), scaled(FC, width)
    shapes = {k: (o, i, k_, k_) for k, (o, i, k_, *_) in conv.items()}
    pool5 = conv["conv5"][0] * 6 * 6  # (256 x width) maps of 6x6
    shapes |= {"fc6": (fc, pool5), "fc7": (fc, fc), "fc8": (num_classes, fc)}
    out = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:]))
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        out[name] = (w, rng.standard_normal(shape[0], dtype=np.float32) * np.float32(0.1))
    return out


def layer_list(
    order: str, lrn: dict | None, num_classes: int, width: float = NARROW
) -> list[tuple]:
    """(name, type, bottom, top, params) of Caffe's AlexNet (order "alexnet") or CaffeNet
    ("caffenet") at ``width`` as its train_val prototxt has them: in-place ReLU and Dropout."""
    lrn = lrn if lrn is not None else {"local_size": 5, "alpha": 1e-4, "beta": 0.75}
    pool = {"pool": 0, "kernel_size": 3, "stride": 2}
    layers, blob = [("data", "Data", None, "data", {})], "data"
    for name, (out, _, k, s, p, g) in convs(width).items():
        i = name[-1]
        conv = {"num_output": out, "kernel_size": [k]}  # Caffe's defaults: stride 1, pad 0
        conv |= ({"stride": [s]} if s != 1 else {}) | ({"pad": [p]} if p else {})
        conv |= {"group": g} if g != 1 else {}
        layers += [(name, "Convolution", blob, name, conv), (f"relu{i}", "ReLU", name, name, {})]
        blob = name
        if i in "12":
            norm = (f"norm{i}", "LRN", None, f"norm{i}", lrn)
            pooling = (f"pool{i}", "Pooling", None, f"pool{i}", pool)
            for n, t, _, top, prm in (norm, pooling) if order == "alexnet" else (pooling, norm):
                layers.append((n, t, blob, top, prm))
                blob = top
        elif i == "5":
            layers.append(("pool5", "Pooling", blob, "pool5", pool))
            blob = "pool5"
    fc = scaled(FC, width)
    for name, out in (("fc6", fc), ("fc7", fc), ("fc8", num_classes)):
        layers.append((name, "InnerProduct", blob, name, {"num_output": out}))
        blob = name
        if name != "fc8":
            i = name[-1]
            layers += [(f"relu{i}", "ReLU", name, name, {}), (f"drop{i}", "Dropout", name, name,
                       {"dropout_ratio": 0.5})]  # fmt: skip
    layers.append(("loss", "SoftmaxWithLoss", "fc8", "loss", {}))
    return layers


PARAM_FIELD = {
    "Convolution": "convolution_param",
    "InnerProduct": "inner_product_param",
    "LRN": "lrn_param",
    "Pooling": "pooling_param",
    "Dropout": "dropout_param",
}


def encode_net(pb, layout: str, layers: list[tuple], weights: dict) -> bytes:
    """A NetParameter in ``layout`` "layer" (LayerParameter, blobs with BlobShape) or
    "layers" (V1LayerParameter, legacy 4-D blobs, blobs_lr/weight_decay as the 2014 files)."""
    net = pb.NetParameter(name="AlexNet")
    for name, kind, bottom, top, params in layers:
        if layout == "layer":
            layer = net.layer.add(name=name, type=kind)
        else:
            layer = net.layers.add(name=name, type=V1_TYPE[kind])
        if bottom:
            layer.bottom.append(bottom)
        layer.top.append(top)
        if kind in PARAM_FIELD and params:
            sub = getattr(layer, PARAM_FIELD[kind])
            for k, v in params.items():
                if isinstance(v, list):
                    getattr(sub, k).extend(v)
                else:
                    setattr(sub, k, v)
        if name in weights:
            for array in weights[name]:
                fill_blob(layer.blobs.add(), array, legacy=layout == "layers")
            if layout == "layers":
                layer.blobs_lr.extend([1.0, 2.0])
                layer.weight_decay.extend([1.0, 0.0])
    return net.SerializeToString()


def record(field: int, payload: bytes) -> bytes:
    """One length-delimited record, as protobuf writes it: tag, length, payload."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def small_net(pb, layout: str = "layer", blobs: dict | None = None, width: float = NARROW) -> bytes:
    """AlexNet's layers at ``width`` (10-way fc8) with blobs that only fill the shapes they
    state: every weight layer (1,) and (1,), fc8 a (1, fc7's features) weight: a ~3 KB file
    (~18 KB at width 1) that passes the layout checks and reaches the shape checks.
    ``blobs``: (layer, 0 or 1) -> a function that fills that BlobProto instead."""
    layers = layer_list("alexnet", None, 10, width)
    net = pb.NetParameter.FromString(encode_net(pb, layout, layers, {}))
    for layer in net.layer if layout == "layer" else net.layers:
        if layer.name == "fc8":
            layer.inner_product_param.num_output = 1
        if layer.name in CONVS or layer.name in ("fc6", "fc7", "fc8"):
            for i in (0, 1):
                blob = layer.blobs.add()
                if blobs and (layer.name, i) in blobs:
                    blobs[layer.name, i](blob)
                elif (layer.name, i) == ("fc8", 0):
                    fc8 = np.zeros((1, scaled(FC, width)), np.float32)
                    fill_blob(blob, fc8, legacy=layout == "layers")
                else:
                    fill_blob(blob, np.zeros(1, np.float32), legacy=layout == "layers")
    return net.SerializeToString()


def caffe_lrn(x: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """lrn_layer.cpp CrossChannelForward: squares zero-padded by (n - 1) / 2 channels."""
    c, pre = x.shape[1], (n - 1) // 2
    sq = F.pad(x * x, (0, 0, 0, 0, pre, n - 1 - pre))
    scale = k + alpha / n * sum(sq[:, i : i + c] for i in range(n))
    return x * scale**-beta


def caffe_pool(x: torch.Tensor) -> torch.Tensor:
    """Max pool 3/2 with Caffe's rounding: ceil((H - 3) / 2) + 1 output rows."""
    h = x.shape[-1]
    out = F.max_pool2d(x, 3, 2, ceil_mode=True)
    assert out.shape[-1] == -(-(h - 3) // 2) + 1 == (h - 3) // 2 + 1  # ceil == floor here
    return out


def caffe_forward(weights: dict, x_bgr: torch.Tensor, order: str, lrn: dict):
    """Caffe's AlexNet/CaffeNet (any width: the sizes are the blobs') in float64 on a
    mean-subtracted BGR batch -> (fc7, fc8)."""
    w = {
        k: (torch.from_numpy(a).double(), torch.from_numpy(b).double())
        for k, (a, b) in weights.items()
    }
    n, alpha, beta, k = lrn["local_size"], lrn["alpha"], lrn["beta"], lrn.get("k", 1.0)
    x = x_bgr.double()
    for name, (_, _, _, stride, pad, group) in CONVS.items():
        x = F.relu(F.conv2d(x, *w[name], stride=stride, padding=pad, groups=group))
        if name in ("conv1", "conv2"):
            if order == "alexnet":
                x = caffe_pool(caffe_lrn(x, n, alpha, beta, k))
            else:
                x = caffe_lrn(caffe_pool(x), n, alpha, beta, k)
        elif name == "conv5":
            x = caffe_pool(x)
    x = x.flatten(1)  # (B, 256 x width * 6 * 6), Caffe's C-order blob
    fc7 = F.relu(F.linear(F.relu(F.linear(x, *w["fc6"])), *w["fc7"]))  # dropout: identity
    return fc7, F.linear(fc7, *w["fc8"])


@pytest.fixture(scope="session")
def caffe():
    """The schema's message classes (``caffe.pb``) and the helpers above."""
    pb = _schema()
    return types.SimpleNamespace(
        pb=pb,
        narrow=NARROW,
        scaled=scaled,
        weights=caffe_weights,
        layer_list=layer_list,
        encode_net=encode_net,
        fill_blob=fill_blob,
        forward=caffe_forward,
        lrn=caffe_lrn,
        small_net=lambda layout="layer", blobs=None, width=NARROW: small_net(
            pb, layout, blobs, width
        ),
        record=record,
        varint=_varint,
    )
