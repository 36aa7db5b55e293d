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
``tower_slices(model)`` returns these channel ranges; ``alexnet.parallel`` uses
them to put the towers on two devices.

Parameters at 1000 classes: 60,965,224 (the paper says "60 million").
Initialisation (§5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6,
fc7 ("accelerates the early stages of learning by providing the ReLUs with
positive inputs"), 0 in conv1, conv3, fc8. ``init="caffe"`` uses 0.1 in place of
the 1s (Caffe's bvlc_alexnet does, as the paper's biases stall some runs);
``init="kaiming"`` uses He-normal weights, zero biases and a zero fc8 (the
first logits are 0 and the loss ln(classes)), for short runs: the demo
(configs/demo.yaml) leaves chance in its first epoch this way, where §5's init
stays at chance for 3 epochs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from alexnet.fused import relu_lrn_pool
from alexnet.nn import LocalResponseNorm

from ._registry import register_model

__all__ = ["AlexNet", "AlexNetConfig", "tower_slices"]

INPUT_SIZES = {227: 0, 224: 2}  # accepted input size -> conv1 padding giving 55x55
INITS = ("paper", "caffe", "kaiming")
NORMS = ("lrn", "bn", "none")


@dataclass
class AlexNetConfig:
    """Options of the paper's network; ``__post_init__`` reports all bad values at once."""

    num_classes: int = 1000
    input_size: int = 227  # 227, or 224 (conv1 padded by 2)
    norm: str = "lrn"  # "lrn" (paper §3.3), "bn" (BatchNorm after every conv), "none"
    dropout: float = 0.5  # on the outputs of fc6 and fc7 (§4.2)
    init: str = "paper"  # "paper" (§5), "caffe" (biases 0.1), "kaiming"
    lrn_size: int = 5
    lrn_alpha: float = 1e-4
    lrn_beta: float = 0.75
    lrn_k: float = 2.0

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
        if self.init not in INITS:
            errors.append(f"init must be one of {INITS}, got {self.init!r}")
        if errors:
            raise ValueError("; ".join(errors))


def _conv_block(name: str, conv: nn.Conv2d, norm: str, cfg: AlexNetConfig, lrn: bool):
    """conv -> [BN] -> ReLU -> [LRN]: the paper applies LRN after the ReLU (§3.3)."""
    layers = [(name, conv)]
    idx = name[-1]
    if norm == "bn":
        layers.append((f"bn{idx}", nn.BatchNorm2d(conv.out_channels)))
    layers.append((f"relu{idx}", nn.ReLU(inplace=True)))
    if lrn and norm == "lrn":
        layers.append(
            (
                f"lrn{idx}",
                LocalResponseNorm(
                    cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k, groups=2, inplace=True
                ),
            )
        )
    return layers


class Features(nn.Sequential):
    """conv1 .. pool5 in order; each ReLU -> LRN -> max-pool run (conv1's and conv2's)
    goes through ``alexnet.fused.relu_lrn_pool``: one pass of a C kernel on the CPU,
    the three modules otherwise (CUDA, compile/export, hooks); the same numbers either
    way (README "Benchmarks": bf16 channels_last training went from 0.89x to 0.96x of
    torchvision's images/s)."""

    def forward(self, x: Tensor) -> Tensor:
        layers = list(self)
        i = 0
        while i < len(layers):
            run = layers[i : i + 3]
            if (
                len(run) == 3
                and isinstance(run[0], nn.ReLU)
                and isinstance(run[1], LocalResponseNorm)
            ):
                x = relu_lrn_pool(x, *run)  # run[2](run[1](run[0](x))) when not fusable
                i += 3
            else:
                x = layers[i](x)
                i += 1
        return x


class AlexNet(nn.Module):
    """The 2012 paper's AlexNet (two towers as grouped convolutions, LRN, overlapping pools)."""

    def __init__(self, config: AlexNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        cfg = config if config is not None else AlexNetConfig(**kwargs)
        if config is not None and kwargs:
            raise ValueError("pass either a config or keyword options, not both")
        self.config = cfg
        bn = cfg.norm == "bn"
        pad1 = INPUT_SIZES[cfg.input_size]
        feats = []
        feats += _conv_block(
            "conv1", nn.Conv2d(3, 96, 11, 4, pad1, bias=not bn), cfg.norm, cfg, True
        )
        feats.append(("pool1", nn.MaxPool2d(3, 2)))
        conv2 = nn.Conv2d(96, 256, 5, 1, 2, groups=2, bias=not bn)
        feats += _conv_block("conv2", conv2, cfg.norm, cfg, True)
        feats.append(("pool2", nn.MaxPool2d(3, 2)))
        feats += _conv_block(
            "conv3", nn.Conv2d(256, 384, 3, 1, 1, bias=not bn), cfg.norm, cfg, False
        )
        conv4 = nn.Conv2d(384, 384, 3, 1, 1, groups=2, bias=not bn)
        feats += _conv_block("conv4", conv4, cfg.norm, cfg, False)
        conv5 = nn.Conv2d(384, 256, 3, 1, 1, groups=2, bias=not bn)
        feats += _conv_block("conv5", conv5, cfg.norm, cfg, False)
        feats.append(("pool5", nn.MaxPool2d(3, 2)))
        self.features = Features(OrderedDict(feats))
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(256 * 6 * 6, 4096)),
                    ("relu6", nn.ReLU(inplace=True)),
                    ("drop6", nn.Dropout(cfg.dropout)),
                    ("fc7", nn.Linear(4096, 4096)),
                    ("relu7", nn.ReLU(inplace=True)),
                    ("drop7", nn.Dropout(cfg.dropout)),
                    ("fc8", nn.Linear(4096, cfg.num_classes)),
                ]
            )
        )
        self.reset_parameters()

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise as §5 (or the Caffe / Kaiming alternative named by ``config.init``)."""
        one = {"paper": 1.0, "caffe": 0.1, "kaiming": 0.0}[self.config.init]
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
        for name, m in [*self.features.named_children(), *self.classifier.named_children()]:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.config.init == "kaiming" and name == "fc8":
                    nn.init.zeros_(m.weight)  # initial logits 0: loss ln(classes), no blow-up
                elif self.config.init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, 0.01)
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
        """(B, 3, S, S) images -> (B, 256, 6, 6) pool5 maps."""
        self._check_input(x)
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, 256, 6, 6) -> (B, num_classes) logits, or (B, 4096) fc7 features
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


def _build(num_classes: int, norm: str, kwargs: dict) -> AlexNet:
    lrn = kwargs.pop("lrn", None)
    if lrn is not None:  # the original README's ``lrn=True/False`` switch
        if norm != "lrn":
            raise ValueError("lrn= applies to the LRN network only")
        norm = "lrn" if lrn else "none"
    return AlexNet(AlexNetConfig(num_classes=num_classes, norm=norm, **kwargs))


@register_model
def alexnet(num_classes: int = 1000, **kwargs) -> AlexNet:
    """The paper's network (§3): LRN, two towers, 60,965,224 parameters at 1000 classes.

    Options: ``input_size`` (227 or 224), ``lrn`` (True), ``dropout`` (0.5),
    ``init`` ("paper", "caffe", "kaiming") and the LRN constants ``lrn_*``.
    """
    return _build(num_classes, "lrn", kwargs)


@register_model
def alexnet_bn(num_classes: int = 1000, **kwargs) -> AlexNet:
    """The paper's network with BatchNorm after every convolution instead of LRN.

    Conv biases are dropped (BatchNorm's shift replaces them): 60,963,384
    parameters plus BatchNorm's 2 x 1,376 at 1000 classes.
    """
    return _build(num_classes, "bn", kwargs)
