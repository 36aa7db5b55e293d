"""The single-tower AlexNet of "One weird trick" (Krizhevsky, 2014), as torchvision ships it.

Written here (models import only torch) with torchvision's module layout, so
``torchvision.models.alexnet()``'s state dict loads with ``strict=True`` and
gives the same outputs: 61,100,840 parameters at 1000 classes, no LRN, an
adaptive 6x6 average pool, dropout on the *inputs* of fc6 and fc7
(pytorch/vision#549), PyTorch's default initialisation.

    input              (B,    3, 224, 224)   (any size >= 63 works: adaptive pool)
    features.0  11x11/4 p2 -> (B,  64, 55, 55) -> ReLU -> pool 3/2 (B, 64, 27, 27)
    features.3  5x5 p2     -> (B, 192, 27, 27) -> ReLU -> pool     (B, 192, 13, 13)
    features.6  3x3 p1     -> (B, 384, 13, 13) -> ReLU
    features.8  3x3 p1     -> (B, 256, 13, 13) -> ReLU
    features.10 3x3 p1     -> (B, 256, 13, 13) -> ReLU -> pool     (B, 256, 6, 6)
    avgpool (6, 6); classifier.1 9216->4096, classifier.4 4096->4096, classifier.6 -> classes
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._registry import register_model
from .paper import scaled, width_error

__all__ = ["AlexNetOWT"]


class AlexNetOWT(nn.Module):
    """torchvision-compatible AlexNet; keys ``features.N`` / ``classifier.N`` as torchvision's."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, width: float = 1.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if width_error(width):
            raise ValueError(width_error(width))
        self.num_classes = num_classes
        self.model_name = "alexnet_owt"
        self.model_kwargs = {} if dropout == 0.5 else {"dropout": dropout}
        if width != 1.0:
            self.model_kwargs["width"] = width
        # the paper's network's rounding (paper.scaled): width 1/8 gives 8, 24, 48, 32, 32
        # maps and 512 features
        c1, c2, c3, c4, c5 = (scaled(c, width) for c in (64, 192, 384, 256, 256))
        fc = scaled(4096, width)
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * 6 * 6, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(fc, fc),
            nn.ReLU(inplace=True),
            nn.Linear(fc, num_classes),
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 256, 6, 6) (256 x width maps)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        return self.avgpool(self.features(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, 256, 6, 6) -> logits, or the 4096-d (x width) fc7 features after ReLU if
        ``pre_logits``."""
        x = torch.flatten(x, 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    summary='torchvision\'s single-tower "one weird trick" AlexNet: no LRN, its weights load as is',
    input_sizes=(),
    towers=False,
    layers={
        "conv1": "features.0",
        "conv2": "features.3",
        "conv3": "features.6",
        "conv4": "features.8",
        "conv5": "features.10",
        "fc6": "classifier.1",
        "fc7": "classifier.4",
        "fc8": "classifier.6",
    },
    # torchvision's AlexNet_Weights.IMAGENET1K_V1.transforms(): shorter side to 256
    # (aspect kept), centre 224 crop, per-channel mean/std
    preprocessing={"resize": 256, "resize_mode": "shorter", "normalize": "channel"},
)
def alexnet_owt(num_classes: int = 1000, *, dropout: float = 0.5, width: float = 1.0) -> AlexNetOWT:
    """torchvision's AlexNet ("one weird trick" variant): loads its weights as is.
    Any input side of at least 63 works (an adaptive average pool before fc6); 224 is
    torchvision's.

    Options:
        dropout: probability p of dropping fc6's and fc7's inputs (0.5)
        width: multiplier of every layer's maps and of fc6/fc7's features (1 is torchvision's)
    """
    return AlexNetOWT(num_classes=num_classes, dropout=dropout, width=width)
