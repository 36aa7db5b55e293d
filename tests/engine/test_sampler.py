"""alexnet.engine.sampler: deterministic, resumable, sharded without padding."""

from __future__ import annotations

from alexnet.engine.sampler import ResumableSampler, ShardSampler, sample_seed, strided


def test_same_seed_same_order_and_keys():
    a, b = ResumableSampler(50, seed=3), ResumableSampler(50, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    c = ResumableSampler(50, seed=3)
    c.set_epoch(3)
    assert [i for i, _ in a] != [i for i, _ in c]
    assert sorted(i for i, _ in a) == list(range(50))


def test_start_skips_exactly_the_trained_prefix():
    s = ResumableSampler(40, seed=1)
    s.set_epoch(1)
    full = list(s)
    s.set_epoch(1, start=13)
    assert list(s) == full[13:] and len(s) == 27


def test_shards_are_disjoint_equal_and_unpadded():
    shards = []
    for r in range(3):
        s = ResumableSampler(32, seed=0, rank=r, world_size=3)
        s.set_epoch(0)
        shards.append([i for i, _ in s])
    assert all(len(x) == 10 for x in shards)
    flat = [i for x in shards for i in x]
    assert len(set(flat)) == 30
    ev = [list(ShardSampler(32, r, 3)) for r in range(3)]
    assert sorted(i for x in ev for i in x) == list(range(32))


def test_sample_seed_is_stable_and_spread():
    assert sample_seed(0, 0, 0) == sample_seed(0, 0, 0)
    seeds = {sample_seed(7, e, i) for e in range(5) for i in range(200)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)


def test_a_limited_evaluation_is_spread_over_the_split_and_sharded():
    assert strided(12, 3) == [0, 4, 8] and strided(5, None) == strided(5, 9) == list(range(5))
    assert list(ShardSampler(12, limit=3)) == [0, 4, 8]
    shards = [list(ShardSampler(100, r, 3, limit=10)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == strided(100, 10)
