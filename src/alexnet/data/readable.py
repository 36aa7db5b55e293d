"""A split without its unreadable images, for scores and features (``--skip-bad`` of
``evaluate`` and ``features``): a bad image counts neither as an image nor in the result.

The dataset's own ``skip_bad`` puts the next good image in a bad one's place, right for
training, wrong here: :class:`ReadableOnly` gives an :class:`Unreadable` instead, and
:func:`collate_readable` takes it out of its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from torch.utils.data import Dataset, default_collate

from .images import BadImageError

__all__ = ["ReadableOnly", "Unreadable", "collate_readable", "readable_batches"]


@dataclass
class Unreadable:
    """In place of the sample at ``index``: ``message`` names the file and the fault."""

    index: int
    message: str


class ReadableOnly(Dataset):
    """``ds`` with each unreadable image given as an :class:`Unreadable`."""

    def __init__(self, ds: Dataset) -> None:
        self.ds, self.classes = ds, ds.classes

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        try:
            return self.ds[index]
        except BadImageError as e:
            return Unreadable(index, str(e))


def collate_readable(items: list) -> tuple:
    """(the readable samples collated, or None; the :class:`Unreadable` ones)."""
    good = [x for x in items if not isinstance(x, Unreadable)]
    bad = [x for x in items if isinstance(x, Unreadable)]
    return (default_collate(good) if good else None), bad


def readable_batches(loader: Iterable, skipped: list[str]) -> Iterator:
    """The readable batches of a ``collate_readable`` loader; the messages of the
    unreadable images are appended to ``skipped``."""
    for batch, bad in loader:
        skipped.extend(x.message for x in bad)
        if batch is not None:
            yield batch
