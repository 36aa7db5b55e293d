"""Is a Caffe net AlexNet? Which of its layers are conv1 .. fc8, in which order does it pool
and normalise, with which constants; and its blobs as the ``alexnet`` model's tensors.

The net is followed as data flows (each layer's ``top`` to the next layer naming it as
``bottom``), not by layer names, so renamed layers (a fine-tuned ``fc8_flickr``) are
found. Between the eight weight layers AlexNet has (Caffe's ``models/bvlc_alexnet`` and
``models/bvlc_reference_caffenet`` prototxts):

    conv1 -> ReLU -> LRN -> Pooling -> conv2 -> (the same) -> conv3 -> ReLU -> conv4
    -> ReLU -> conv5 -> ReLU -> Pooling -> fc6 -> ReLU [-> Dropout] -> fc7 -> (the same) -> fc8

CaffeNet pools before it normalises (ReLU -> Pooling -> LRN). Caffe's LRN (``lrn_layer.cpp``)
is ``x / (k + alpha / n * sum over n channels of x^2) ** beta`` across all channels of the
layer, zero-padded at the ends: the ``alexnet`` model's ``lrn_alpha_over_n=True,
lrn_window="layer"``. Caffe's max pool rounds its output size up (ceil), PyTorch's down;
here every pooled side is exact (55 -> 27 -> 13 -> 6), so the two agree.

An AlexNet of another width (the model's ``width`` option) is found too: conv1's
``num_output`` n gives the width, n / 96, and every other layer must have that width's
size (``scaled``: width 1/8 is conv1..conv5 12, 32, 48, 48, 32 maps, fc6/fc7 512).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from alexnet.errors import UserError
from alexnet.models import PAPER_LAYERS
from alexnet.models.paper import scaled, width_error, width_of

from .caffe_proto import CaffeLayer, CaffeNet

__all__ = ["CaffeAlexNet", "find_alexnet", "state_dict_from_caffe"]

WEIGHT_KINDS = ("Convolution",) * 5 + ("InnerProduct",) * 3
# Figure 2 in Caffe's terms: conv -> (num_output at width 1, kernel, stride, pad, group)
CONVS = {
    "conv1": (96, 11, 4, 0, 1),
    "conv2": (256, 5, 1, 2, 2),
    "conv3": (384, 3, 1, 1, 1),
    "conv4": (384, 3, 1, 1, 2),
    "conv5": (256, 3, 1, 1, 2),
}
ALEXNET_ORDER, CAFFENET_ORDER = ("ReLU", "LRN", "Pooling"), ("ReLU", "Pooling", "LRN")
FC = 4096  # fc6's and fc7's features at width 1
FC_ORDERS = (("ReLU", "Dropout"), ("ReLU",))
# what runs after each weight layer, up to the next one
BETWEEN = {
    "conv1": (ALEXNET_ORDER, CAFFENET_ORDER),
    "conv2": (ALEXNET_ORDER, CAFFENET_ORDER),
    "conv3": (("ReLU",),),
    "conv4": (("ReLU",),),
    "conv5": (("ReLU", "Pooling"),),
    "fc6": FC_ORDERS,
    "fc7": FC_ORDERS,
}


@dataclass
class CaffeAlexNet:
    """What the importer needs of a net that passed :func:`find_alexnet`."""

    weights: dict[str, CaffeLayer]  # "conv1" .. "fc8" -> the Caffe layer
    pool_before_lrn: bool
    lrn: dict  # local_size, alpha, beta, k: what the file says
    dropout: float
    num_classes: int
    width: float  # conv1's num_output / 96; 1.0 is the paper's network


def _next(layers: list[CaffeLayer], i: int) -> int | None:
    """The index of the first layer after ``i`` that reads one of layer ``i``'s outputs."""
    tops = set(layers[i].tops)
    return next((j for j in range(i + 1, len(layers)) if tops & set(layers[j].bottoms)), None)


def _walk(net: CaffeNet, src: str) -> tuple[list[CaffeLayer], dict[str, list[CaffeLayer]]]:
    """The eight weight layers in data-flow order, and the layers after each of the first
    seven; a one-line UserError when the net does not have them."""
    layers = net.layers
    i = next((j for j, layer in enumerate(layers) if layer.type == "Convolution"), None)
    if i is None:
        kinds = sorted({layer.type for layer in layers}) or ["none"]
        kinds = kinds if len(kinds) <= 10 else [*kinds[:10], f"{len(kinds) - 10:,} more"]
        raise UserError(f"{src}: not an AlexNet: no Convolution layer (layer types: {kinds})")
    weights, between = [layers[i]], {}
    while len(weights) < 8:
        paper, run = PAPER_LAYERS[len(weights) - 1], []
        j = _next(layers, i)
        while j is not None and layers[j].type not in ("Convolution", "InnerProduct"):
            if layers[j].type != "Split":  # Caffe's copies of a blob read twice
                run.append(layers[j])
            i, j = j, _next(layers, j)
        between[paper] = run
        if j is None:
            have = ", ".join(f"{w.name} ({w.type})" for w in weights)
            want = ", ".join(PAPER_LAYERS[len(weights) :])
            raise UserError(
                f"{src}: not an AlexNet: the data flows through {have} and then "
                f"{'stops' if not run else 'ends after ' + run[-1].name}; {want} missing"
            )
        paper, kind = PAPER_LAYERS[len(weights)], WEIGHT_KINDS[len(weights)]
        if layers[j].type != kind:
            raise UserError(
                f"{src}: not an AlexNet: layer {layers[j].name!r} ({layers[j].type}) is where "
                f"AlexNet has {paper} ({kind})"
            )
        weights.append(layers[j])
        i = j
    return weights, between


def _check_between(between: dict[str, list[CaffeLayer]], problems: list[str]) -> bool | None:
    """Check the layers between the weight layers; -> pool_before_lrn (None if unknown)."""
    orders = []
    for paper, run in between.items():
        kinds = tuple(layer.type for layer in run)
        if kinds not in BETWEEN[paper]:
            want = " or ".join(" -> ".join(k) for k in BETWEEN[paper])
            problems.append(
                f"after {paper} the net has {' -> '.join(kinds) or 'nothing'}, AlexNet {want}"
            )
        elif paper in ("conv1", "conv2"):
            orders.append(kinds == CAFFENET_ORDER)
        for layer in run:
            p = layer.params
            if layer.type == "Pooling" and (
                (p["pool"], p["kernel"], p["stride"], p["pad"], p["global"])
                != ("MAX", (3, 3), (2, 2), (0, 0), False)
            ):
                problems.append(
                    f"{layer.name} is a {p['pool']} pool {p['kernel']} stride {p['stride']} pad "
                    f"{p['pad']}, AlexNet's a MAX pool 3x3 stride 2"
                )
            if layer.type == "ReLU" and p["negative_slope"] != 0:
                problems.append(f"{layer.name} is leaky (negative_slope {p['negative_slope']})")
            if layer.type == "LRN" and (
                p["region"] != "ACROSS_CHANNELS"
                or p["local_size"] % 2 == 0
                or not 1 <= p["local_size"] <= 96
            ):
                problems.append(
                    f"{layer.name} is an LRN {p['region']} of size {p['local_size']}, "
                    "AlexNet's is across an odd number of channels, at most conv1's 96"
                )
            if layer.type == "LRN":
                bad = [k for k in ("alpha", "beta", "k") if not np.isfinite(p[k])]
                if bad or p["k"] < 0 or p["alpha"] < 0:
                    problems.append(
                        f"{layer.name} has alpha {p['alpha']} beta {p['beta']} k {p['k']}: "
                        "AlexNet's are finite, alpha and k not negative"
                    )
            if layer.type == "Dropout" and not 0.0 <= p["ratio"] < 1.0:
                problems.append(f"{layer.name} has dropout_ratio {p['ratio']}, not in [0, 1)")
    if len(set(orders)) > 1:
        problems.append("one block pools before LRN and the other after")
    return orders[0] if orders else None


def _alexnets(paper: str, width: float | None) -> str:
    """How errors name the model's layer: "AlexNet's conv2", with the width when it is not
    the paper's ("AlexNet's conv2 (width 0.125)")."""
    if width in (None, 1.0):
        return f"AlexNet's {paper}"
    return f"AlexNet's {paper} (width {width:g})"


def _width(conv1: CaffeLayer, problems: list[str]) -> float | None:
    """The width conv1's num_output n gives (n / 96); None, the problem named, when no width
    the model can build gives n."""
    n, full = conv1.params["num_output"], CONVS["conv1"][0]
    width = width_of(n, full)
    if width is None:
        why = width_error(n / full) or "conv1 has 96 x width maps, rounded to an even count"
        problems.append(f"{conv1.name} has num_output {n}, which no AlexNet width gives ({why})")
    return width


def _check_weights(
    weights: dict[str, CaffeLayer], width: float | None, problems: list[str]
) -> None:
    """Blobs, geometry and sizes of the eight weight layers at ``width`` (None: conv1 gives
    none, and only the geometry is checked)."""
    fc = scaled(FC, width) if width is not None else None
    for paper, layer in weights.items():
        p = layer.params
        if len(layer.blobs) != 2 or not p["bias_term"]:
            problems.append(f"{layer.name} has {len(layer.blobs)} blobs, AlexNet's {paper} 2")
        if paper in CONVS:
            got = (p["num_output"], p["kernel"], p["stride"], p["pad"], p["group"])
            c, k, s, pad, g = CONVS[paper]
            n = scaled(c, width) if width is not None else f"{c} x width"
            if (
                (width is not None and got[0] != n)
                or got[1:] != ((k, k), (s, s), (pad, pad), g)
                or set(p["dilation"]) != {1}
            ):
                problems.append(
                    f"{layer.name} is num_output {got[0]} kernel {got[1]} stride {got[2]} pad "
                    f"{got[3]} group {got[4]}, {_alexnets(paper, width)} num_output {n} kernel "
                    f"{k} stride {s} pad {pad} group {g}"
                )
        elif p["axis"] != 1 or p["transpose"]:
            problems.append(f"{layer.name} has axis {p['axis']} transpose {p['transpose']}")
        elif fc is None:
            continue
        elif paper != "fc8" and p["num_output"] != fc:
            problems.append(
                f"{layer.name} has {p['num_output']} outputs, {_alexnets(paper, width)} {fc}"
            )
        elif paper == "fc8" and layer.blobs:
            rows = math.prod(layer.blobs[0].shape) // fc  # the blob's values are in the file
            if p["num_output"] not in (0, rows) or rows == 0:
                problems.append(
                    f"{layer.name} has num_output {p['num_output']} and a weight blob of "
                    f"shape {layer.blobs[0].shape}: {_alexnets(paper, width)} is "
                    f"(num_output, {fc})"
                )


def _same(layers: list[CaffeLayer], keys: tuple[str, ...], what: str, problems: list[str]):
    values = {tuple(layer.params[k] for k in keys) for layer in layers}
    if len(values) > 1:
        names = " and ".join(layer.name for layer in layers)
        problems.append(f"{names} have different {what} {sorted(values)}; the model has one")
    return dict(zip(keys, sorted(values)[0], strict=True)) if values else None


def find_alexnet(net: CaffeNet, src: str) -> CaffeAlexNet:
    """The net's AlexNet layers and constants; UserError (one line, every problem named)
    when it is not an AlexNet (bvlc_alexnet's or CaffeNet's order)."""
    found, between = _walk(net, src)
    weights = dict(zip(PAPER_LAYERS, found, strict=True))
    problems: list[str] = []
    pool_before_lrn = _check_between(between, problems)
    width = _width(weights["conv1"], problems)
    _check_weights(weights, width, problems)
    run = [layer for paper in between for layer in between[paper]]
    lrns = [layer for layer in run if layer.type == "LRN"]
    lrn = _same(lrns, ("local_size", "alpha", "beta", "k"), "LRN constants", problems)
    drops = [layer for layer in run if layer.type == "Dropout"]
    dropout = _same(drops, ("ratio",), "dropout ratios", problems)
    if problems:
        raise UserError(f"{src}: not AlexNet's layout: {'; '.join(problems)}")
    # checked: fc8's weight is (num_output or unset, fc7's features)
    n = math.prod(weights["fc8"].blobs[0].shape) // scaled(FC, width)
    return CaffeAlexNet(
        weights, bool(pool_before_lrn), lrn, dropout["ratio"] if dropout else 0.5, n, width
    )


def _fit(shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """A blob's shape with legacy leading 1s dropped down to ``rank`` axes
    ((1, 1, 4096, 9216) -> (4096, 9216); (1, 1, 1, 96) -> (96,))."""
    ones = next((i for i, d in enumerate(shape) if d != 1), len(shape))
    return shape[min(ones, max(len(shape) - rank, 0)) :]  # one slice: linear in the rank


def state_dict_from_caffe(
    found: CaffeAlexNet, expected: dict[str, torch.Size], paths: dict[str, str], src: str
) -> dict[str, torch.Tensor]:
    """The weights of ``found`` under the model's keys (``paths``: "conv1" -> module path;
    ``expected``: key -> shape), conv1's input channels turned from Caffe's BGR to RGB.
    UserError naming every blob whose shape does not match."""
    out, problems = {}, []
    for paper, layer in found.weights.items():
        for blob, part in zip(layer.blobs, ("weight", "bias"), strict=False):
            key = f"{paths[paper]}.{part}"
            want = tuple(expected[key])
            shape = _fit(blob.shape, len(want))
            if shape != want:
                hint = ""
                if len(want) == len(shape) == 4 and shape[1] == 2 * want[1]:
                    hint = " (group 1: AlexNet's conv2, conv4 and conv5 have group 2)"
                problems.append(
                    f"{layer.name} {part} is {shape}, {_alexnets(paper, found.width)} {want}{hint}"
                )
                continue
            array = np.array(blob.data, dtype=np.float32).reshape(want)  # a copy: writable
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                problems.append(f"{layer.name} {part} holds {bad:,} NaN or infinite values")
                continue
            if key == f"{paths['conv1']}.weight":
                array = np.ascontiguousarray(array[:, ::-1])  # (96 x width, 3 BGR -> RGB, 11, 11)
            out[key] = torch.from_numpy(array)
    if problems:
        raise UserError(f"{src}: {'; '.join(problems)}")
    missing = sorted(set(expected) - set(out))
    if missing:
        raise UserError(f"{src}: no blob for {', '.join(missing)}")
    return out
