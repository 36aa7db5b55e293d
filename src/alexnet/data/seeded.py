"""Per-sample seeding, so augmentation depends on (seed, index) only: never on which
DataLoader worker decodes a sample, on the order, or on where a run was resumed.

The training sampler yields ``(index, sample_seed)`` keys; ``SeededDataset`` seeds
torch's CPU generator with ``sample_seed`` around the base dataset's ``__getitem__``
and restores the caller's state afterwards (``torch.random.fork_rng``), so the main
process's RNG stream is untouched. The presets draw only from that generator.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["SeededDataset", "derive_seed"]

_MASK64 = (1 << 64) - 1


def derive_seed(seed: int, index: int) -> int:
    """A 63-bit seed from (seed, index): splitmix64 finaliser, stable across Python runs."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xD1B54A32D192ED03 + 1) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1


class SeededDataset(Dataset):
    """``ds[(index, sample_seed)]`` or ``ds[index]`` (seed ``derive_seed(seed, index)``)."""

    def __init__(self, base: Dataset, seed: int = 0) -> None:
        self.base, self.seed = base, int(seed)

    @property
    def classes(self) -> list[str]:
        return self.base.classes

    @property
    def targets(self) -> Any:
        return self.base.targets

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            index, sample_seed = int(key[0]), int(key[1])
        else:
            index = int(key)
            sample_seed = derive_seed(self.seed, index)
        # devices=[]: save/restore only the CPU generator; manual_seed on it alone
        # (torch.manual_seed would also reseed CUDA, which fork_rng would not restore).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed & _MASK64)
            return self.base[index]

    def __repr__(self) -> str:
        return f"SeededDataset({self.base!r}, seed={self.seed})"
