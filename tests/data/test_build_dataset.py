"""build_dataset over ImageFolder trees, tarballs and stores: class names, layout errors at
start-up, non-image files counted, symlink loops, corrupt images named or skipped."""

from __future__ import annotations

import os
import tarfile

import pytest
import torch

from alexnet.data import BadImageError, ImageFolderDataset, PackedDataset, build_dataset
from alexnet.errors import UserError


def test_classes_targets_and_items(make_tree):
    root = make_tree()
    ds = build_dataset(root, "train")
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["cat", "dog", "emu"]
    assert ds.targets == [0, 0, 0, 1, 1, 2, 2]
    img, label = ds[3]
    assert img.mode == "RGB" and label == 1
    val = build_dataset(root, "val", transform=lambda im: im.size)
    assert val.classes == ds.classes and len(val) == 3 and isinstance(val[0][0], tuple)


def test_val_falls_back_to_test_folder(make_tree):
    root = make_tree({"train": {"a": 1, "b": 1}, "test": {"a": 1, "b": 2}})
    assert len(build_dataset(root, "val")) == 3


def test_missing_directory(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        build_dataset(tmp_path / "absent", "train")


def test_missing_split(make_tree):
    root = make_tree({"train": {"a": 1}})
    with pytest.raises(UserError, match=r"val or .*test: no such directory"):
        build_dataset(root, "val")


def test_split_without_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "readme.txt").write_text("hi")
    with pytest.raises(UserError, match="no class folders"):
        build_dataset(tmp_path, "train")


def test_empty_class_folder(make_tree):
    root = make_tree({"train": {"a": 2}})
    (root / "train" / "b").mkdir()
    (root / "train" / "b" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"class folder\(s\) with no images: .*train/b"):
        build_dataset(root, "train")


def test_bad_split_name(make_tree):
    with pytest.raises(UserError, match="split must be one of train, val, test"):
        build_dataset(make_tree(), "valid")


def test_test_split_is_its_own_folder(make_tree):
    root = make_tree({"train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}, "test": {"a": 2, "b": 1}})
    assert len(build_dataset(root, "test")) == 3 and len(build_dataset(root, "val")) == 2
    with pytest.raises(UserError, match=r"test: no such directory"):
        build_dataset(make_tree({"train": {"a": 1}, "val": {"a": 1}}, name="no_test"), "test")


def test_non_image_files_are_ignored_and_counted(make_tree):
    root = make_tree({"train": {"a": 2, "b": 1}})
    (root / "train" / "a" / "labels.csv").write_text("x")
    (root / "train" / "a" / ".DS_Store").write_bytes(b"\0")
    (root / "train" / "LICENSE").write_text("x")
    ds = build_dataset(root, "train")
    assert len(ds) == 3 and ds.report.ignored == 3
    assert "3 non-image files ignored" in ds.report.summary()


def test_symlink_loop_is_walked_once(make_tree):
    root = make_tree({"train": {"a": 2, "b": 1}})
    os.symlink("..", root / "train" / "a" / "up")  # a/up -> train/, which holds a/ again
    os.symlink("self", root / "train" / "b" / "self")  # a link to itself (ELOOP)
    ds = build_dataset(root, "train")
    assert ds.classes == ["a", "b"]
    # a/ holds its 2 images, and through up/ the tree train/ (a again is skipped, b is new)
    assert len(ds) == 2 + 1 + 1
    assert ds.report.revisited_dirs >= 1 and ds.report.ignored >= 1


def test_non_utf8_class_and_file_names(make_tree):
    root = make_tree({"train": {"a": 2}})
    odd = os.fsdecode(b"\xe9t\xe9")  # Latin-1 bytes: not valid UTF-8
    (root / "train" / odd).mkdir()
    (root / "train" / "a" / "001.png").rename(root / "train" / odd / os.fsdecode(b"x\xff.png"))
    ds = build_dataset(root, "train")
    assert ds.classes == ["a", odd] and ds.targets == [0, 1] and ds[1][0].mode == "RGB"


def test_corrupt_image_names_the_file(make_tree):
    root = make_tree({"train": {"a": 2}})
    (root / "train" / "a" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = build_dataset(root, "train")
    ds[0]
    with pytest.raises(BadImageError, match="001.png"):
        ds[1]


def test_skip_bad_substitutes_the_next_good_image(make_tree):
    root = make_tree({"train": {"a": 2, "b": 1}})
    (root / "train" / "a" / "001.png").write_bytes(b"")
    ds = build_dataset(root, "train", skip_bad=True)
    img, label = ds[1]  # bad -> next sample (class b)
    assert label == 1 and img.mode == "RGB"
    assert len(ds.bad_files) == 1


def test_tarball_source(make_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    root = make_tree({"train": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}, name="mini")
    with tarfile.open(tmp_path / "mini.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="mini")
    ds = build_dataset(tmp_path / "mini.tar.gz", "val")
    assert ds.classes == ["a", "b"] and len(ds) == 2
    assert build_dataset(tmp_path / "mini.tar.gz", "train").root.parent == ds.root.parent


def test_store_source_and_incomplete_store(make_tree, tmp_path):
    from alexnet.data import prepare_store

    prepare_store(make_tree(), tmp_path / "store", size=32, stats=False)
    ds = build_dataset(tmp_path / "store", "val")
    assert isinstance(ds, PackedDataset) and ds.classes == ["cat", "dog", "emu"]
    assert ds[0][0].dtype == torch.uint8
    (tmp_path / "store" / "meta.json").unlink()
    with pytest.raises(UserError, match="incomplete packed store"):
        build_dataset(tmp_path / "store", "train")


def test_demo_source(tmp_path, monkeypatch):
    from alexnet.data import default_demo_root, make_demo_dataset

    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path))
    make_demo_dataset(tmp_path / "mine", train_per_class=1, val_per_class=1, size=32)
    ds = build_dataset(f"demo:{tmp_path / 'mine'}", "val")
    assert len(ds) == 10 and ds.classes[0] == "blotches"
    make_demo_dataset(default_demo_root(), train_per_class=2, val_per_class=1, num_classes=3)
    assert len(build_dataset("demo", "train")) == 6


def test_torchvision_source_without_download(tmp_path):
    with pytest.raises(UserError, match=r"cifar10:.*--download"):
        build_dataset(f"cifar10:{tmp_path}", "train")
    with pytest.raises(UserError, match="needs a directory"):
        build_dataset("imagenette:", "train")


@pytest.mark.slow
def test_cifar10_jpeg_tarball(cifar10_tarball, tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path))
    train = build_dataset(cifar10_tarball, "train")
    val = build_dataset(cifar10_tarball, "val")  # the tarball's test/
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    assert train.classes == names and val.classes == names
    assert (len(train), len(val)) == (50_000, 10_000)
    assert train[0][0].size == (32, 32)
