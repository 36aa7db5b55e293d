"""Dataset fingerprints: what changes is said in sentences, what does not compares equal."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil

import numpy as np
import torch

from alexnet.data import build_dataset, prepare_store
from alexnet.data.fingerprint import compare, fingerprint

from .conftest import noise_image


def _fp(source, split="train"):
    return fingerprint(build_dataset(source, split))


def test_the_same_tree_twice_is_equal(make_tree):
    root = make_tree()
    a, b = _fp(root), _fp(root)
    assert a == b and compare(a, b) == []
    assert a["kind"] == "folder" and a["split"] == "train"
    assert a["classes"] == ["cat", "dog", "emu"] and a["count"] == 7 and a["per_class"] == [3, 2, 2]


def test_three_images_added(make_tree):
    root = make_tree()
    before = _fp(root)
    rng = np.random.default_rng(1)
    for i in range(3):
        noise_image(rng, 20, 20).save(root / "train" / "cat" / f"new{i}.png")
    changes = compare(before, _fp(root))
    assert changes[0] == "3 images added to train (7 -> 10)"
    assert changes[1] == "images per class in train: 'cat' 3 -> 6"
    assert compare(_fp(root), before)[0] == "3 images removed from train (10 -> 7)"


def test_a_class_added_and_one_removed(make_tree):
    root = make_tree()
    before = _fp(root)
    (root / "train" / "fox").mkdir()
    noise_image(np.random.default_rng(1), 20, 20).save(root / "train" / "fox" / "a.png")
    added = compare(before, _fp(root))
    assert added[:2] == ["class 'fox' added to train", "1 image added to train (7 -> 8)"]
    shutil.rmtree(root / "train" / "fox")
    shutil.rmtree(root / "train" / "emu")
    removed = compare(before, _fp(root))
    assert removed[:2] == ["class 'emu' removed from train", "2 images removed from train (7 -> 5)"]


def test_a_file_replaced_by_one_of_another_size(make_tree):
    root = make_tree()
    before = _fp(root)
    noise_image(np.random.default_rng(9), 123, 45).save(root / "train" / "dog" / "000.png")
    assert compare(before, _fp(root)) == ["images of train renamed or replaced (same count)"]


def test_a_file_renamed(make_tree):
    root = make_tree()
    before = _fp(root)
    (root / "train" / "dog" / "000.png").rename(root / "train" / "dog" / "zzz.png")
    assert compare(before, _fp(root)) == ["images of train renamed or replaced (same count)"]


def test_the_tree_copied_elsewhere_is_equal(make_tree, tmp_path):
    root = make_tree()
    moved = shutil.copytree(root, tmp_path / "elsewhere" / "copy")
    a, b = _fp(root, "val"), _fp(moved, "val")
    assert a["root"] != b["root"]  # recorded, not compared
    assert compare(a, b) == []


def test_packed_store(make_tree, tmp_path):
    root = make_tree()
    prepare_store(root, tmp_path / "s1", size=16, stats=False)
    prepare_store(root, tmp_path / "s2", size=16, stats=False)
    one, two = _fp(tmp_path / "s1"), _fp(tmp_path / "s2")
    assert one["kind"] == "packed" and one["count"] == 7 and one["size"] == 16
    assert compare(one, two) == []  # re-packing the same files gives the same store
    assert one["files_sha256"] == _fp(root)["files_sha256"]  # the digest of its source
    assert compare(_fp(root), one) == [
        "train was an image folder, now a packed store of the same files"
    ]

    noise_image(np.random.default_rng(1), 20, 20).save(root / "train" / "emu" / "new.png")
    prepare_store(root, tmp_path / "s1", size=16, stats=False, force=True)
    assert compare(two, _fp(tmp_path / "s1"))[0] == "1 image added to train (7 -> 8)"
    prepare_store(root, tmp_path / "s3", size=32, stats=False)
    assert "train: image size 16 -> 32 pixels" in compare(
        _fp(tmp_path / "s1"), _fp(tmp_path / "s3")
    )


def test_a_store_written_before_digests(make_tree, tmp_path):
    """Such a store has no files_sha256: counts, classes and the .u8 file's size stand in."""
    prepare_store(make_tree(), tmp_path / "new", size=16, stats=False)
    old = shutil.copytree(tmp_path / "new", tmp_path / "old")
    meta = json.loads((old / "meta.json").read_text())
    for info in meta["splits"].values():
        del info["files_sha256"]
    (old / "meta.json").write_text(json.dumps(meta))
    legacy = _fp(old)
    assert legacy["files_sha256"] is None and legacy["bytes"] == 7 * 3 * 16 * 16
    assert compare(legacy, _fp(shutil.copytree(old, tmp_path / "moved"))) == []
    assert compare(legacy, _fp(tmp_path / "new")) == [
        "train: the packed store was re-created (the old one cannot be compared)"
    ]


def test_torchvision_datasets(make_tree):
    from torchvision.datasets import ImageFolder

    from alexnet.data import TorchvisionDataset

    root = make_tree()
    tv = ImageFolder(root / "train")
    fp = fingerprint(TorchvisionDataset(tv, tv.classes, tv.targets))
    assert fp["kind"] == "torchvision" and fp["dataset"] == "ImageFolder"
    assert fp["per_class"] == [3, 2, 2]
    assert fp["files_sha256"] == _fp(root)["files_sha256"]  # samples under a root: hashed
    bare = fingerprint(TorchvisionDataset([None] * 4, ["a", "b"], [0, 1, 1, 1]))
    assert bare["files_sha256"] is None and bare["per_class"] == [1, 3]
    assert compare(bare, fingerprint(TorchvisionDataset([None] * 5, ["a", "b"], [0, 1, 1, 1, 1])))


def test_class_order_and_per_class_moves():
    base = {"version": 1, "kind": "folder", "split": "train", "count": 4, "files_sha256": "x"}
    a = {**base, "classes": ["a", "b"], "per_class": [2, 2]}
    assert compare(a, {**a, "classes": ["b", "a"]}) == [
        "classes of train in another order (labels now mean other classes)"
    ]
    moved = compare(a, {**a, "per_class": [1, 3], "files_sha256": "y"})
    assert moved == ["images per class in train: 'a' 2 -> 1, 'b' 2 -> 3"]
    assert compare(a, {**a, "version": 2}) == [
        "train: fingerprint version 1, cannot compare its files"
    ]


def test_json_and_weights_only_round_trips(make_tree, tmp_path):
    fp = _fp(make_tree())
    assert json.loads(json.dumps(fp)) == fp
    torch.save({"data_fingerprint": {"train": fp}}, tmp_path / "ck.pt")
    back = torch.load(tmp_path / "ck.pt", weights_only=True)["data_fingerprint"]["train"]
    assert back == fp and compare(fp, back) == []


def test_twenty_thousand_files_without_reading_one(tmp_path, monkeypatch):
    """One stat per file and no file opened: O(files), cheap for ImageNet's 1.28 M."""
    sizes = []  # files of 0..6 bytes: contents never matter here
    for n in range(7):
        sizes.append(tmp_path / f"{n}-bytes")
        sizes[-1].write_bytes(bytes(n))
    for c in range(20):
        d = tmp_path / "big" / "train" / f"c{c:02d}"
        d.mkdir(parents=True)
        for i in range(1000):  # hard links: 1 s where 20,000 new files took 20 s on ext4
            os.link(sizes[i % 7], d / f"{i:04d}.jpg")
    ds = build_dataset(tmp_path / "big", "train")

    def no_reading(*args, **kwargs):
        raise AssertionError(f"fingerprint opened a file: {args[:1]}")

    monkeypatch.setattr(builtins, "open", no_reading)
    monkeypatch.setattr(io, "open", no_reading)
    fp = fingerprint(ds)
    monkeypatch.undo()
    assert fp["count"] == 20_000 and fp["per_class"] == [1000] * 20
