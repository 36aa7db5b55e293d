"""prepare_store and PackedDataset: round trip, labels and class names, statistics,
bad images (stop or skip), non-image files, atomic creation, workers, DataLoader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from alexnet.data import (
    BadImageError,
    PackedDataset,
    build_dataset,
    load_image,
    load_stats,
    prepare_store,
    resize_center_crop,
    train_transform,
)
from alexnet.data import prepare as prepare_module
from alexnet.errors import UserError


def test_round_trip_equals_the_resized_original(make_tree, tmp_path):
    root = make_tree()
    report = prepare_store(root, tmp_path / "s", size=64)
    assert report.written == {"train": 7, "val": 3}
    for split in ("train", "val"):
        folder, store = build_dataset(root, split), PackedDataset(tmp_path / "s", split)
        assert store.classes == folder.classes == ["cat", "dog", "emu"]
        assert store.targets.tolist() == folder.targets
        for i, (path, _) in enumerate(folder.samples):
            expected = np.asarray(resize_center_crop(load_image(path), 64)).transpose(2, 0, 1)
            assert np.array_equal(store[i][0].numpy(), expected)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["complete"] is True and meta["size"] == 64
    assert not list(tmp_path.glob("s.tmp-*"))


def test_large_jpeg_decoded_at_reduced_scale_stays_close(make_tree, tmp_path):
    from PIL import Image

    root = make_tree({"train": {"a": 1}, "val": {"a": 1}})
    smooth = np.linspace(0, 255, 1200, dtype=np.float32)
    a = np.stack(
        np.broadcast_arrays(smooth[None, :], smooth[:900, None], 128 + 0 * smooth[None, :]), -1
    )
    Image.fromarray(a.astype(np.uint8)).save(root / "train" / "a" / "big.jpg", quality=95)
    prepare_store(root, tmp_path / "s", size=128, stats=False)
    ds = build_dataset(tmp_path / "s", "train")
    full = np.asarray(resize_center_crop(load_image(root / "train" / "a" / "big.jpg"), 128))
    diff = np.abs(ds[1][0].numpy().transpose(1, 2, 0).astype(int) - full.astype(int))
    assert diff.mean() < 2.0 and diff.max() < 20


def test_statistics_are_stored_and_found(make_tree, tmp_path):
    prepare_store(make_tree(), tmp_path / "s", size=32)
    stats = load_stats(tmp_path / "s")
    assert stats is not None and stats.num_images == 7
    assert stats.mean_image.shape == (3, 32, 32)
    assert 0.45 < stats.mean[0] < 0.55  # uniform noise images


def test_val_labels_follow_train_classes(make_tree, tmp_path):
    root = make_tree({"train": {"a": 1, "b": 1, "c": 1}, "val": {"c": 2}})
    prepare_store(root, tmp_path / "s", size=16, stats=False)
    val = PackedDataset(tmp_path / "s", "val")
    assert val.classes == ["a", "b", "c"] and val.targets.tolist() == [2, 2]
    bad = make_tree({"train": {"a": 1}, "val": {"z": 1}}, name="bad")
    with pytest.raises(UserError, match="val classes not in train: z"):
        prepare_store(bad, tmp_path / "s2", size=16)


def test_corrupt_image_stops_and_leaves_nothing(make_tree, tmp_path):
    root = make_tree()
    (root / "train" / "dog" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\ncut")
    with pytest.raises(BadImageError, match=r"dog/001.png: .*--skip-bad"):
        prepare_store(root, tmp_path / "s", size=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_skip_bad_counts_and_reports(make_tree, tmp_path):
    root = make_tree()
    (root / "train" / "dog" / "000.png").write_bytes(b"")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    report = prepare_store(root, tmp_path / "s", size=16, skip_bad=True, stats=False)
    assert report.written["train"] == 6 and len(report.skipped["train"]) == 1
    assert report.ignored["train"] == 1
    assert "dog/000.png: empty file" in report.summary()
    store, folder = PackedDataset(tmp_path / "s", "train"), build_dataset(root, "train")
    kept = [(p, t) for p, t in folder.samples if not p.endswith("dog/000.png")]
    assert store.targets.tolist() == [t for _, t in kept]
    last = np.asarray(resize_center_crop(load_image(kept[-1][0]), 16)).transpose(2, 0, 1)
    assert np.array_equal(store[len(store) - 1][0].numpy(), last)  # compacted in order


def test_interrupted_prepare_leaves_no_valid_looking_store(make_tree, tmp_path, monkeypatch):
    real, calls = prepare_module._pack_chunk, []

    def interrupted(job):  # Ctrl-C while the second chunk is being packed
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(prepare_module, "_pack_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_store(make_tree(), tmp_path / "s", size=16)
    assert len(calls) == 2
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob("s.tmp-*"))


def test_leftover_temporary_folder_is_refused(make_tree, tmp_path):
    prepare_store(make_tree(), tmp_path / "s", size=16, stats=False)
    (tmp_path / "s" / "meta.json").rename(tmp_path / "meta.json.bak")
    (tmp_path / "s").rename(tmp_path / "s.tmp-abc")
    with pytest.raises(UserError, match="incomplete packed store"):
        build_dataset(tmp_path / "s.tmp-abc", "train")


def test_existing_destination_needs_force(make_tree, tmp_path):
    root = make_tree()
    prepare_store(root, tmp_path / "s", size=16, stats=False)
    with pytest.raises(UserError, match="already exists"):
        prepare_store(root, tmp_path / "s", size=16)
    prepare_store(root, tmp_path / "s", size=24, stats=False, force=True)
    assert PackedDataset(tmp_path / "s").size == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "tree"]


def test_workers_write_the_same_bytes(make_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(prepare_module, "CHUNK", 2)  # several chunks for two processes
    root = make_tree()
    prepare_store(root, tmp_path / "one", size=32, workers=1, stats=False)
    prepare_store(root, tmp_path / "two", size=32, workers=2, stats=False)
    for split in ("train", "val"):
        a = (tmp_path / "one" / f"{split}.u8").read_bytes()
        assert a == (tmp_path / "two" / f"{split}.u8").read_bytes()


def test_dataloader_with_workers_and_load_batch(make_tree, tmp_path):
    prepare_store(make_tree(), tmp_path / "s", size=256, stats=False)
    ds = PackedDataset(tmp_path / "s", "train", transform=train_transform(227))
    x, y = next(iter(DataLoader(ds, batch_size=7, num_workers=2)))
    assert x.shape == (7, 3, 227, 227) and y.tolist() == [0, 0, 0, 1, 1, 2, 2]
    raw = PackedDataset(tmp_path / "s", "train")
    images, labels = raw.load_batch([5, 0, 3])
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 256, 256)
    assert torch.equal(images[1], raw[0][0]) and labels.tolist() == [2, 0, 1]


def test_missing_split_and_bad_size(make_tree, tmp_path):
    with pytest.raises(UserError, match="size must be >= 1"):
        prepare_store(make_tree(), tmp_path / "s", size=0)
    root = make_tree({"train": {"a": 1}}, name="only-train")
    with pytest.raises(UserError, match="val or .*test: no such directory"):
        prepare_store(root, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_warp_store_and_the_resize_mode_check(tmp_path):
    """--resize-mode warp packs whole images squeezed to SIZExSIZE and records it; a run
    that resizes otherwise refuses the store with the command that repacks it."""
    from PIL import Image

    from alexnet.data import prepare_store
    from alexnet.engine.config import TrainConfig
    from alexnet.engine.distributed import DistInfo
    from alexnet.engine.setup import build_data
    from alexnet.errors import UserError

    root = tmp_path / "src"
    for split in ("train", "val"):
        d = root / split / "a"
        d.mkdir(parents=True)
        img = Image.new("RGB", (64, 32), (0, 40, 255))  # every channel varies: std > 0
        img.paste((255, 0, 0), (0, 0, 16, 32))  # the left quarter is red
        img.save(d / "x.png")
    store = tmp_path / "store"
    prepare_store(root, store, size=32, resize_mode="warp", stats=False)
    ds = PackedDataset(store, "train")
    assert ds.resize_mode == "warp" and ds[0][0][0, 16, 2] > 200  # red survives: not cropped
    cfg = TrainConfig(data=str(store), batch_size=1, workers=0, resize=32)
    pre = {**cfg.preprocessing(), "input_size": 24}  # resize_mode "square", the paper's
    with pytest.raises(UserError, match="--resize-mode warp"):
        build_data(cfg, DistInfo(), torch.device("cpu"), pre)
    bundle = build_data(cfg, DistInfo(), torch.device("cpu"), {**pre, "resize_mode": "warp"})
    assert bundle.train_size == 1
