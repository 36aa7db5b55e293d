"""The training sampler: a seeded permutation per epoch, sharded over ranks, resumable mid-epoch.

It yields ``(index, sample_seed)`` keys for ``alexnet.data.SeededDataset``: the
augmentation of a sample depends only on (run seed, epoch, index), never on the
worker that decodes it or on where a run was interrupted. Together with the
saved optimizer and RNG states this makes ``--resume`` bit-identical.

It is a ``DistributedSampler`` (``set_epoch`` each epoch); unlike the stock one
it never pads: each rank takes ``len // world_size`` samples of the shuffled
order (the last ``len % world_size`` of the epoch's permutation are left out
of that epoch only, a different few each epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed from (seed, epoch, index), stable across processes and Python runs."""
    x = seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB
    x &= _MASK
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & _MASK
    return x ^ (x >> 29)


class ResumableSampler(DistributedSampler):
    """Shuffled (index, seed) keys for one rank; ``start`` skips samples already trained on."""

    def __init__(
        self, length: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        self.length = length
        self.num_replicas, self.rank = world_size, rank
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.num_samples = length // world_size
        self.total_size = self.num_samples * world_size
        self.drop_last = True
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's permutation; skip the first ``start`` samples of this rank."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices()[self.start :]:
            yield i, sample_seed(self.seed, self.epoch, i)

    def __len__(self) -> int:
        return self.num_samples - self.start


def strided(length: int, count: int | None) -> list[int]:
    """``count`` indices evenly spaced through ``range(length)`` (all when ``count`` is None
    or not smaller): a split stored class by class gives each class its share."""
    if count is None or count >= length:
        return list(range(length))
    return [i * length // count for i in range(count)]


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation order for one rank: indices rank, rank+W, ... with no padding, so
    the ranks together see every sample exactly once (summed with all_reduce).
    ``limit``: only that many samples in all, evenly spaced through the split
    (``--eval-batches``: every class, not the first batches of a class-sorted split)."""

    def __init__(
        self, length: int, rank: int = 0, world_size: int = 1, limit: int | None = None
    ) -> None:
        self.idx = strided(length, limit)[rank::world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)
