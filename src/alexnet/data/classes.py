"""ImageNet's 1000 classes (ILSVRC-2012, §2) and matching a split's class folders to a
checkpoint's outputs.

``imagenet_classes.json`` lists ``[WordNet id, name]`` in the synset order of the devkit,
Caffe's ``synset_words.txt`` and every 1000-way checkpoint (row i = output i); the names
are torchvision's (``AlexNet_Weights.IMAGENET1K_V1.meta["categories"]``).

``map_classes`` lets a checkpoint score data holding any subset of its classes: each of
the data's classes is found among the checkpoint's by its exact name, and for a 1000-way
(ImageNet) checkpoint also by WordNet id (``n01440764``, or a name ending ``(n01440764)``
as ``imagenet:`` gives duplicates) or by name (``tench``, ``great_white_shark``; case and
underscores ignored). The model still scores over all its outputs. ``same_classes`` is
the stricter question training asks of --init-from (the same classes in the same order);
``display_names`` shows WordNet ids as names.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alexnet.errors import UserError

__all__ = [
    "ClassMap",
    "display_names",
    "imagenet_names",
    "imagenet_wnids",
    "map_classes",
    "same_classes",
]

_WNID = re.compile(r"^n\d{8}$")
_WNID_SUFFIX = re.compile(r"\((n\d{8})\)$")
# first synonyms of two synsets each (n02012849 and n03126707, n03710637 and n03710721)
_TWO_SYNSETS = ("crane", "maillot")


@functools.cache
def _imagenet() -> tuple[tuple[str, ...], tuple[str, ...]]:
    rows = json.loads((Path(__file__).parent / "imagenet_classes.json").read_text())
    return tuple(w for w, _ in rows), tuple(n for _, n in rows)


def imagenet_wnids() -> list[str]:
    """The 1000 WordNet ids, in output order (sorted)."""
    return list(_imagenet()[0])


def imagenet_names() -> list[str]:
    """The 1000 class names, in output order."""
    return list(_imagenet()[1])


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
    return [_WNID_SUFFIX.sub("", c).strip() for c in data_classes] == model_classes


def display_names(classes: list[str]) -> list[str]:
    """Human-readable names: ImageNet WordNet ids (n01440764, ...) become the category
    names when all 1000 are present in the standard sorted order."""
    if list(classes) == list(_imagenet()[0]):
        return imagenet_names()
    return classes


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


@dataclass(frozen=True)
class ClassMap:
    """Data class i is the checkpoint's output ``indices[i]``; ``by`` says how they were
    matched ("name", "WordNet id", "WordNet id and name", "position")."""

    indices: list[int]
    total: int  # the checkpoint's classes
    by: str

    @property
    def identity(self) -> bool:
        return self.indices == list(range(self.total))

    def sentence(self, where: str) -> str:
        """``3 of the checkpoint's 1000 classes found in data/x/val (by WordNet id)``."""
        return (
            f"{len(self.indices)} of the checkpoint's {self.total} classes found in {where} "
            f"(by {self.by})"
        )


def _imagenet_keys(model_classes: Sequence[str]) -> tuple[dict[str, int], dict[str, set[int]]]:
    """(WordNet id -> output, normalised name -> outputs) of a 1000-way checkpoint."""
    wnids, names = _imagenet()
    by_name: dict[str, set[int]] = {}
    for j, (own, name) in enumerate(zip(model_classes, names, strict=True)):
        for n in (name, _WNID_SUFFIX.sub("", own).strip()):
            by_name.setdefault(_norm(n), set()).add(j)
    return {w: j for j, w in enumerate(wnids)}, by_name


def map_classes(model_classes: Sequence[str], data_classes: Sequence[str], where: str) -> ClassMap:
    """Match ``data_classes`` (the split's, by index) to ``model_classes`` (the
    checkpoint's outputs); a UserError naming every class that matches none (or two)."""
    model_classes, data_classes = list(model_classes), list(data_classes)
    n = len(model_classes)
    unnamed = model_classes == [str(i) for i in range(n)]
    if unnamed and len(data_classes) == n:  # imported weights without names: trust the order
        return ClassMap(list(range(n)), n, "position")
    exact = {c: j for j, c in enumerate(model_classes)}
    imagenet = _imagenet_keys(model_classes) if n == 1000 else None
    indices, how, unknown, ambiguous = [], set(), [], []
    for c in data_classes:
        j, kind = exact.get(c), "WordNet id" if _WNID.match(c) else "name"
        if imagenet is not None and _norm(c) in _TWO_SYNSETS:
            ambiguous.append(c)
            continue
        if j is None and imagenet is not None:
            m = _WNID_SUFFIX.search(c)
            wnid = c if _WNID.match(c) else (m.group(1) if m else None)
            if wnid is not None:
                j, kind = imagenet[0].get(wnid), "WordNet id"
            else:
                hits = imagenet[1].get(_norm(c), set())
                if len(hits) > 1:
                    ambiguous.append(c)
                j = next(iter(hits)) if len(hits) == 1 else None
        if j is None:
            if c not in ambiguous:
                unknown.append(c)
            continue
        indices.append(j)
        how.add(kind)
    problems = []
    if unknown:
        shown = ", ".join(unknown[:8]) + (
            f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        )
        hint = (
            "name class folders by WordNet id (n01440764) or by name (tench)"
            if imagenet is not None
            else f"its classes: {', '.join(model_classes[:8])}{', ...' if n > 8 else ''}"
        )
        problems.append(
            f"{len(unknown)} of its {len(data_classes)} classes not among the checkpoint's "
            f"{n}: {shown} ({hint})"
        )
    if ambiguous:
        problems.append(
            f"{', '.join(ambiguous)}: more than one ImageNet class has this name; "
            "name the folder by its WordNet id"
        )
    twice = sorted({c for c, j in zip(data_classes, indices, strict=False) if indices.count(j) > 1})
    if not problems and twice:
        problems.append(f"{', '.join(twice)} are the same class of the checkpoint")
    if problems:
        raise UserError(f"{where}: " + "; ".join(problems))
    by = " and ".join(sorted(how, key=["WordNet id", "name"].index)) or "name"
    return ClassMap(indices, n, by)
