"""The network of Krizhevsky, Sutskever & Hinton (NIPS 2012), Figure 2, exactly.

Layer by layer for a 227x227 input (the paper's text says 224; 227 is what the
arithmetic of an 11x11 stride-4 conv needs to give 55x55 without padding, and
what Caffe uses; ``input_size=224`` pads conv1 by 2 to reach the same 55x55):

    input            (B,    3, 227, 227)
    conv1 11x11/4    (B,   96,  55,  55)   -> ReLU -> LRN (per tower) -> max-pool 3/2
    pool1            (B,   96,  27,  27)
    conv2 5x5 p2 g2  (B,  256,  27,  27)   -> ReLU -> LRN (per tower) -> max-pool 3/2
    pool2            (B,  256,  13,  13)
    conv3 3x3 p1     (B,  384,  13,  13)   -> ReLU   (sees both towers)
    conv4 3x3 p1 g2  (B,  384,  13,  13)   -> ReLU
    conv5 3x3 p1 g2  (B,  256,  13,  13)   -> ReLU -> max-pool 3/2
    pool5            (B,  256,   6,   6) = 9216
    fc6              (B, 4096) -> ReLU -> dropout 0.5
    fc7              (B, 4096) -> ReLU -> dropout 0.5
    fc8              (B, num_classes)

Two towers (§3.2): the paper split every layer between two GPUs. Here a layer
that stays inside its tower is a grouped convolution (``groups=2``), and the
split is by channel halves: tower A owns output channels ``[0, C/2)`` of every
layer (conv1..conv5) and output features ``[0, F/2)`` of fc6/fc7, tower B the
rest. conv2, conv4, conv5 see only their own tower's input, and each LRN sums
only over its own tower's maps (each GPU normalised the maps it held; Caffe's
one-GPU bvlc_alexnet instead lets the 5-map window cross the boundary between
map 47 and 48); conv3, fc6, fc7 and fc8 see both towers, which is where the
paper's GPUs exchanged activations.
``tower_slices(model)`` returns these channel ranges; ``alexnet.engine.parallel`` uses
them to put the towers on two devices.

Parameters at 1000 classes: 60,965,224 (the paper says "60 million").
Initialisation (§5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6,
fc7 ("accelerates the early stages of learning by providing the ReLUs with
positive inputs"), 0 in conv1, conv3, fc8. ``init="caffe"`` is Caffe's
bvlc_alexnet (``models/bvlc_alexnet/train_val.prototxt``): fc6 and fc7 weights
N(0, 0.005) and 0.1 in place of the 1s. ``init="kaiming"`` uses He-normal weights,
zero biases and a zero fc8 (the first logits are 0 and the loss ln(classes)), for
short runs on standardised inputs such as the demo (configs/demo.yaml).

Dropout (§4.2): ``dropout_form="paper"`` zeroes each fc6/fc7 output with
probability p in training and multiplies all of them by 1 - p at test time ("we
use all the neurons but multiply their outputs by 0.5"); ``"inverted"`` is
PyTorch's (and Caffe's) form, which scales by 1 / (1 - p) in training instead.

The LRN constants are the paper's (k = 2, n = 5, alpha = 1e-4 *not* divided by n,
beta = 0.75, the window inside each tower). Caffe's bvlc_alexnet is
``lrn_k=1, lrn_alpha_over_n=True, lrn_window="layer"`` (one GPU: the window crosses
from map 47 to 48); CaffeNet (bvlc_reference_caffenet) also pools before it
normalises: ``pool_before_lrn=True``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
from torch import Tensor, nn

from alexnet.ops.nn import Dropout, LocalResponseNorm, ReLULRNPool

from ._registry import register_model

__all__ = ["AlexNet", "AlexNetConfig", "tower_slices"]

INPUT_SIZES = {227: 0, 224: 2}  # accepted input size -> conv1 padding giving 55x55
INITS = ("paper", "caffe", "kaiming")
NORMS = ("lrn", "bn", "none")
DROPOUT_FORMS = ("paper", "inverted")
LRN_WINDOWS = ("tower", "layer")


def _option(default: object, help: str) -> object:
    """A model option's default and its help (``alexnet train --help``, ``model_info``)."""
    return field(default=default, metadata={"help": help})


@dataclass
class AlexNetConfig:
    """Options of the paper's network, each declared once here: its type, its default and its
    help are what ``create_model``, the checkpoint checks and the ``--<option>`` flags of
    ``alexnet train`` read (``models._registry``). ``__post_init__`` reports all bad values
    at once."""

    num_classes: int = 1000
    input_size: int = _option(227, "227 (the paper's arithmetic) or 224 (conv1 padded by 2)")
    norm: Literal["lrn", "bn", "none"] = _option(
        "lrn", "lrn (paper §3.3), bn (BatchNorm after every conv) or none"
    )
    dropout: float = _option(0.5, "probability p of dropping an fc6 or fc7 output (§4.2: 0.5)")
    dropout_form: Literal["paper", "inverted"] = _option(
        "paper", "paper (outputs x (1 - p) at test time) or inverted (PyTorch's)"
    )
    init: Literal["paper", "caffe", "kaiming"] = _option(
        "paper", "paper (§5), caffe (bvlc_alexnet's fillers) or kaiming (He, zero fc8)"
    )
    lrn_size: int = _option(5, "n, the maps in an LRN window (5)")
    lrn_alpha: float = _option(1e-4, "alpha (1e-4)")
    lrn_beta: float = _option(0.75, "beta (0.75)")
    lrn_k: float = _option(2.0, "k (2; Caffe's is 1)")
    lrn_alpha_over_n: bool = _option(
        False, "divide alpha by n, as Caffe, cuda-convnet and PyTorch do"
    )
    lrn_window: Literal["tower", "layer"] = _option(
        "tower", "tower (inside each tower, the paper) or layer (across all maps, Caffe)"
    )
    pool_before_lrn: bool = _option(False, "pool, then normalise (CaffeNet's order)")
    width: float = _option(
        1.0, "multiplier of every layer's maps and of fc6/fc7's features (1 is the paper)"
    )

    def __post_init__(self) -> None:
        errors = []
        if self.num_classes < 1:
            errors.append(f"num_classes must be >= 1, got {self.num_classes}")
        if self.input_size not in INPUT_SIZES:
            errors.append(f"input_size must be one of {sorted(INPUT_SIZES)}, got {self.input_size}")
        if self.norm not in NORMS:
            errors.append(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            errors.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dropout_form not in DROPOUT_FORMS:
            errors.append(f"dropout_form must be one of {DROPOUT_FORMS}, got {self.dropout_form!r}")
        if self.init not in INITS:
            errors.append(f"init must be one of {INITS}, got {self.init!r}")
        if self.lrn_size < 1:
            errors.append(f"lrn_size must be >= 1, got {self.lrn_size}")
        if self.lrn_window not in LRN_WINDOWS:
            errors.append(f"lrn_window must be one of {LRN_WINDOWS}, got {self.lrn_window!r}")
        if width_error(self.width):
            errors.append(width_error(self.width))
        if errors:
            raise ValueError("; ".join(errors))

    def options(self) -> dict:
        """The fields that differ from the defaults, minus num_classes: the builder options
        that rebuild this network (``norm`` is the builder's choice, ``lrn=False`` for none)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("num_classes", "norm") or v == f.default:
                continue
            out[f.name] = v
        if self.norm == "none":
            out["lrn"] = False
        return out


def scaled(channels: int, width: float) -> int:
    """``channels`` x ``width``, rounded to an even count (one half per tower), at least 2:
    width 1/8 gives conv1..conv5 12, 32, 48, 48, 32 maps and fc6/fc7 512 features."""
    return max(2, 2 * round(channels * width / 2))


def width_error(width: float) -> str | None:
    """Why the models (this one and ``alexnet_owt``) build no network at ``width``; None
    when they do."""
    return None if 0.0 < width <= 4.0 else f"width must be in (0, 4], got {width}"


def width_of(channels: int, full: int) -> float | None:
    """The width at which a layer of ``full`` maps at width 1 has ``channels`` maps
    (``channels / full``, the inverse of :func:`scaled`); None when no width the models
    build gives that count. The importers read a file's width from its conv1 so."""
    width = channels / full
    return width if not width_error(width) and scaled(full, width) == channels else None


def _conv_block(name: str, conv: nn.Conv2d, cfg: AlexNetConfig, lrn: bool):
    """conv -> [BN] -> ReLU -> [LRN] -> [pool]: the paper applies LRN after the ReLU (§3.3)
    and pools after it (§3.4), one ``ReLULRNPool`` module ``tail{i}`` (children ``relu``,
    ``lrn``, ``pool``: one custom op on the CPU, ``alexnet.ops.nn``); CaffeNet pools first."""
    idx = name[-1]
    layers = [(name, conv)]
    if cfg.norm == "bn":
        layers.append((f"bn{idx}", nn.BatchNorm2d(conv.out_channels)))
    relu = nn.ReLU(inplace=True)
    pool = nn.MaxPool2d(3, 2) if idx in "125" else None
    if not (lrn and cfg.norm == "lrn"):
        return layers + [(f"relu{idx}", relu)] + ([(f"pool{idx}", pool)] if pool else [])
    norm = LocalResponseNorm(
        cfg.lrn_size,
        cfg.lrn_alpha,
        cfg.lrn_beta,
        cfg.lrn_k,
        alpha_over_size=cfg.lrn_alpha_over_n,
        groups=2 if cfg.lrn_window == "tower" else 1,
        inplace=True,
    )
    if cfg.pool_before_lrn:
        return layers + [(f"relu{idx}", relu), (f"pool{idx}", pool), (f"lrn{idx}", norm)]
    return layers + [(f"tail{idx}", ReLULRNPool(relu, norm, pool))]


class AlexNet(nn.Module):
    """The 2012 paper's AlexNet (two towers as grouped convolutions, LRN, overlapping pools)."""

    def __init__(self, config: AlexNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        cfg = config if config is not None else AlexNetConfig(**kwargs)
        if config is not None and kwargs:
            raise ValueError("pass either a config or keyword options, not both")
        self.config = cfg
        self.model_name = "alexnet_bn" if cfg.norm == "bn" else "alexnet"
        self.model_kwargs = cfg.options()
        bias = cfg.norm != "bn"
        pad1 = INPUT_SIZES[cfg.input_size]
        c1, c2, c3, c4, c5 = (scaled(c, cfg.width) for c in (96, 256, 384, 384, 256))
        fc = scaled(4096, cfg.width)
        feats = []
        feats += _conv_block("conv1", nn.Conv2d(3, c1, 11, 4, pad1, bias=bias), cfg, True)
        conv2 = nn.Conv2d(c1, c2, 5, 1, 2, groups=2, bias=bias)
        feats += _conv_block("conv2", conv2, cfg, True)
        feats += _conv_block("conv3", nn.Conv2d(c2, c3, 3, 1, 1, bias=bias), cfg, False)
        conv4 = nn.Conv2d(c3, c4, 3, 1, 1, groups=2, bias=bias)
        feats += _conv_block("conv4", conv4, cfg, False)
        conv5 = nn.Conv2d(c4, c5, 3, 1, 1, groups=2, bias=bias)
        feats += _conv_block("conv5", conv5, cfg, False)
        self.features = nn.Sequential(OrderedDict(feats))
        drop = (cfg.dropout, cfg.dropout_form)
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(c5 * 6 * 6, fc)),
                    ("relu6", nn.ReLU(inplace=True)),
                    ("drop6", Dropout(*drop)),
                    ("fc7", nn.Linear(fc, fc)),
                    ("relu7", nn.ReLU(inplace=True)),
                    ("drop7", Dropout(*drop)),
                    ("fc8", nn.Linear(fc, cfg.num_classes)),
                ]
            )
        )
        self.reset_parameters()

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise as §5 (or the Caffe / Kaiming alternative named by ``config.init``).
        On the meta device there is nothing to fill: ``normal_`` there would import
        torch._dynamo (2.5 s), and ``alexnet train`` builds the model on it to check options."""
        if self.features.conv1.weight.is_meta:
            return
        init = self.config.init
        one = {"paper": 1.0, "caffe": 0.1, "kaiming": 0.0}[init]
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
        for name, m in [*self.features.named_children(), *self.classifier.named_children()]:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init == "kaiming" and name == "fc8":
                    nn.init.zeros_(m.weight)  # initial logits 0: loss ln(classes), no blow-up
                elif init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                else:
                    std = 0.005 if init == "caffe" and name in ("fc6", "fc7") else 0.01
                    nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.constant_(m.bias, one if name in ones else 0.0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()

    def _check_input(self, x: Tensor) -> None:
        size = self.config.input_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2:] != (size, size):
            raise ValueError(
                f"AlexNet built for input_size={size} expects (B, 3, {size}, {size}), "
                f"got {tuple(x.shape)}; accepted sizes: 227 (the paper's arithmetic) "
                "or 224 (create_model(..., input_size=224) pads conv1 by 2)"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) images -> (B, 256, 6, 6) pool5 maps (256 x width)."""
        self._check_input(x)
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, 256, 6, 6) -> (B, num_classes) logits, or (B, 4096) fc7 features (x width)
        (after ReLU, before dropout: the §6.1 retrieval vector) when ``pre_logits``."""
        x = torch.flatten(x, 1)
        if pre_logits:
            return self.classifier[:-2](x)  # up to relu7
        return self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def tower_slices(model: AlexNet) -> dict[str, tuple[slice, slice]]:
    """For each layer name, the output-channel slices of tower A and tower B."""
    out = {}
    for name, m in [*model.features.named_children(), *model.classifier.named_children()]:
        if isinstance(m, (nn.Conv2d, nn.Linear)) and name != "fc8":
            n = m.weight.shape[0]
            out[name] = (slice(0, n // 2), slice(n // 2, n))
    return out


_LAYERS = {
    **{f"conv{i}": f"features.conv{i}" for i in range(1, 6)},
    **{f"fc{i}": f"classifier.fc{i}" for i in range(6, 9)},
}
_PAPER_PREPROCESSING = {"resize": 256, "resize_mode": "square", "normalize": "pixel"}
# the AlexNetConfig fields each builder takes as options (norm is the builder's own choice)
_LRN_OPTIONS = tuple(f.name for f in fields(AlexNetConfig) if f.name not in ("num_classes", "norm"))
_BN_OPTIONS = ("input_size", "dropout", "dropout_form", "init", "width")


@register_model(
    summary="the paper: LRN (k=2, n=5, alpha=1e-4 not divided by n, beta=0.75) per tower, "
    "two towers, paper dropout, §5 init",
    input_sizes=(227, 224),
    towers=True,
    layers=_LAYERS,
    preprocessing=_PAPER_PREPROCESSING,
    config=AlexNetConfig,
    config_options=_LRN_OPTIONS,
)
def alexnet(num_classes: int = 1000, *, lrn: bool = True, **options) -> AlexNet:
    """The paper's network (§3): LRN, two towers, 60,965,224 parameters at 1000 classes.
    ``options``: the fields of :class:`AlexNetConfig` but ``norm``.

    Options:
        lrn: False drops both LRN layers
    """
    return AlexNet(AlexNetConfig(num_classes=num_classes, norm="lrn" if lrn else "none", **options))


@register_model(
    summary="the paper's network with BatchNorm after every convolution instead of LRN",
    input_sizes=(227, 224),
    towers=True,
    layers=_LAYERS,
    preprocessing=_PAPER_PREPROCESSING,
    norms={f"conv{i}": f"features.bn{i}" for i in range(1, 6)},
    config=AlexNetConfig,
    config_options=_BN_OPTIONS,
)
def alexnet_bn(num_classes: int = 1000, **options) -> AlexNet:
    """The paper's network with BatchNorm after every convolution instead of LRN.
    ``options``: the fields of :class:`AlexNetConfig` named in ``_BN_OPTIONS``.

    Conv biases are dropped (BatchNorm's shift replaces them): 60,963,848
    parameters (the paper's 60,965,224 less its 1,376 conv biases) plus BatchNorm's
    2 x 1,376 = 60,966,600 at 1000 classes (``alexnet summary
    --model alexnet_bn``).
    """
    return AlexNet(AlexNetConfig(num_classes=num_classes, norm="bn", **options))
