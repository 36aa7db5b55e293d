"""Class names: whether a model's classes and a dataset's are the same, and ImageNet's
WordNet ids (n01440764, ...) shown as names."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["display_names", "same_classes"]

_WNID = re.compile(r"^n\d{8}$")
_SUFFIX = re.compile(r" \(n\d{8}\)$")


def same_classes(model_classes: Sequence[str], data_classes: Sequence[str]) -> bool:
    """Whether data labelled ``data_classes`` (by index) fits a model trained on
    ``model_classes``: the same names, or ImageNet's 1000 classes named two ways — the
    folders' WordNet ids in sorted order (``val/n01440764/...``) or ``imagenet:``'s names
    with duplicates suffixed by their id, against the category names imported weights
    carry (torchvision's list, in the same synset order)."""
    model_classes, data_classes = list(model_classes), list(data_classes)
    if model_classes == data_classes:
        return True
    if len(model_classes) != 1000 or len(data_classes) != 1000:
        return False
    if all(_WNID.match(c) for c in data_classes) and data_classes == sorted(data_classes):
        return display_names(data_classes) == model_classes
    return [_SUFFIX.sub("", c) for c in data_classes] == model_classes


def display_names(classes: list[str]) -> list[str]:
    """Human-readable names: ImageNet WordNet ids (n01440764, ...) become torchvision's
    category names when all 1000 are present in the standard sorted order."""
    if len(classes) == 1000 and all(_WNID.match(c) for c in classes) and classes == sorted(classes):
        try:
            from torchvision.models import AlexNet_Weights

            return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
        except Exception:  # noqa: BLE001 - names are a nicety
            return classes
    return classes
