"""SeededDataset: the augmentation of (index, seed) is the same in every call, with 0 or 2
DataLoader workers, and leaves the caller's RNG stream alone."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from alexnet.data import SeededDataset, derive_seed, train_transform


class Coloured(Dataset):
    """uint8 (3, 256, 256) images of a few flat-ish colours, labels 0..n-1."""

    classes = ["a", "b", "c", "d", "e", "f"]

    def __init__(self, transform=None) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (6, 3, 256, 256), generator=g, dtype=torch.uint8)
        self.targets = list(range(6))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.targets[i]


def keys(seed: int) -> list[tuple[int, int]]:
    return [(i, derive_seed(seed, 100 + i)) for i in (0, 3, 5, 1, 2, 4)]


def test_same_key_same_tensor_and_caller_rng_untouched():
    ds = SeededDataset(Coloured(train_transform(227, color_jitter=0.3)), seed=7)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = ds[(2, 999)][0]
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(ds[(2, 999)][0], a)
    assert not torch.equal(ds[(2, 1000)][0], a)  # another sample seed, another augmentation
    assert torch.equal(ds[2][0], ds[(2, derive_seed(7, 2))][0])  # plain index -> derived seed
    assert ds.classes == Coloured.classes and len(ds) == 6


def test_dataloader_workers_do_not_change_the_augmentation():
    ds = SeededDataset(Coloured(train_transform(227)), seed=0)
    results = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=2, sampler=keys(1), num_workers=workers)
        results.append(torch.cat([x for x, _ in loader]))
    assert results[0].shape == (6, 3, 227, 227)
    assert torch.equal(results[0], results[1])
    direct = torch.stack([ds[k][0] for k in keys(1)])
    assert torch.equal(results[0], direct)


def test_derive_seed_is_stable():
    assert derive_seed(0, 0) == derive_seed(0, 0)
    assert len({derive_seed(s, i) for s in range(10) for i in range(100)}) == 1000
    assert 0 <= derive_seed(2**40, 2**40) < 2**63
