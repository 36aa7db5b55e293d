"""compute_stats recovers a known RGB covariance and mean; DatasetStats round-trips through
dict and files; load_stats / resolve_stats find, compute and cache them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alexnet.data import IMAGENET_STATS, DatasetStats, compute_stats, load_stats, resolve_stats


def gaussian_images(n: int, size: int, mean: np.ndarray, cov: np.ndarray, seed: int = 0):
    """Items (PIL image, 0) whose pixels are iid N(mean, cov) on the 0-1 scale."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        x = rng.multivariate_normal(mean, cov, size=(size, size))  # (S, S, 3)
        items.append((Image.fromarray(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)), 0))
    return items


def test_recovers_a_known_covariance():
    a = np.array([[0.12, 0.0, 0.0], [0.06, 0.05, 0.0], [0.03, -0.02, 0.02]])
    cov = a @ a.T  # correlated channels, eigenvalues spread over two decades
    mean = np.array([0.5, 0.45, 0.4])
    stats = compute_stats(gaussian_images(12, 64, mean, cov), size=64)
    v, w = np.array(stats.eigvec), np.array(stats.eigval)
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, cov, atol=4e-4)  # + 1/12 quantisation
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-9)  # orthonormal columns
    assert w[0] >= w[1] >= w[2] > 0
    true_w, true_v = np.linalg.eigh(cov)
    np.testing.assert_allclose(w, true_w[::-1], rtol=0.03, atol=3e-5)
    assert abs(abs(v[:, 0] @ true_v[:, -1]) - 1) < 1e-3  # first principal axis
    np.testing.assert_allclose(stats.mean, mean, atol=2e-3)
    np.testing.assert_allclose(stats.std, np.sqrt(np.diag(cov)), rtol=0.02)
    assert stats.mean_image.shape == (3, 64, 64) and stats.num_images == 12


def test_max_images_takes_a_seeded_subset():
    items = gaussian_images(6, 8, np.full(3, 0.5), np.eye(3) * 0.01)
    a = compute_stats(items, max_images=3, size=8, seed=1)
    b = compute_stats(items, max_images=3, size=8, seed=1)
    assert a.num_images == 3 and a.to_dict() == b.to_dict()


def test_dict_and_file_round_trip(tmp_path):
    img = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    stats = DatasetStats((0.1, 0.2, 0.3), (1, 2, 3), (3, 2, 1), np.eye(3).tolist(), img, 5, "x")
    back = DatasetStats.from_dict(stats.to_dict(), img)
    assert back.to_dict() == stats.to_dict()
    stats.save(tmp_path)
    loaded = DatasetStats.load(tmp_path)
    assert loaded.to_dict() == stats.to_dict() and np.array_equal(loaded.mean_image, img)
    assert DatasetStats.load(tmp_path / "nothing") is None
    inline = DatasetStats.from_dict(stats.to_dict(embed_mean_image=True))  # checkpoint form
    assert np.array_equal(inline.mean_image, img)
    assert "base64" not in stats.to_dict()["mean_image"]


def test_imagenet_defaults_are_documented_values():
    assert IMAGENET_STATS.eigval == (0.2175, 0.0188, 0.0045)
    assert IMAGENET_STATS.mean == (0.485, 0.456, 0.406)
    assert IMAGENET_STATS.mean_image is None


def test_imagenet_fallback_is_one_covariance():
    """The std values are the square roots of the diagonal of eigvec diag(eigval) eigvec^T:
    the fallback statistics describe one covariance matrix (float64)."""
    v = np.asarray(IMAGENET_STATS.eigvec, dtype=np.float64)
    lam = np.asarray(IMAGENET_STATS.eigval, dtype=np.float64)
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-4)  # orthonormal columns
    cov = v @ np.diag(lam) @ v.T
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), IMAGENET_STATS.std, atol=1e-4)
    # the channels' variances add up to the eigenvalues' sum (the trace)
    assert float(np.sum(np.square(IMAGENET_STATS.std))) == pytest.approx(lam.sum(), rel=1e-3)


def test_resolve_computes_caches_and_loads(make_tree, monkeypatch, tmp_path):
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    root = make_tree()
    assert load_stats(root) is None
    assert resolve_stats(root, compute=False) is IMAGENET_STATS
    stats = resolve_stats(root)
    assert (root / "stats.json").is_file() and (root / "mean_image.npy").is_file()
    assert load_stats(root).to_dict() == stats.to_dict()


def test_archive_source_caches_in_the_cache_folder(make_tree, monkeypatch, tmp_path):
    """A tarball (like ../shared/data/cifar10-jpeg.tar.gz) cannot hold stats.json."""
    import tarfile

    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    root = make_tree(name="mini")
    with tarfile.open(tmp_path / "mini.tar", "w") as tar:
        tar.add(root, arcname="mini")
    stats = resolve_stats(tmp_path / "mini.tar")
    assert stats.num_images == 7
    assert len(list((tmp_path / "cache" / "stats").glob("*/stats.json"))) == 1
    assert load_stats(tmp_path / "mini.tar").to_dict() == stats.to_dict()


def _banded_tree(root, n: int = 3):
    """ImageFolder of 80x40 images: a red band in the outer 20 columns on each side, grey
    between, so the central square never sees the red a warp squeezes in."""
    for split in ("train", "val"):
        d = root / split / "a"
        d.mkdir(parents=True)
        for i in range(n):
            a = np.full((40, 80, 3), 100 + 10 * i, dtype=np.uint8)
            a[:, :20] = a[:, -20:] = (250, 0, 0)
            Image.fromarray(a).save(d / f"{i}.png")
    return root


def _reference(files, size: int, warp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean image (3, S, S) and per-channel mean in float64, straight from Pillow: the
    whole image resized to SxS (warp), or its central square resized (§2)."""
    acc = np.zeros((size, size, 3))
    for f in files:
        img = Image.open(f).convert("RGB")
        w, h = img.size
        s = min(w, h)
        box = None if warp else ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        acc += np.asarray(img.resize((size, size), Image.BILINEAR, box=box), dtype=np.float64)
    mean_image = (acc / len(files) / 255.0).transpose(2, 0, 1)
    return mean_image, mean_image.reshape(3, -1).mean(1)


def test_warped_statistics_are_the_warped_pixels(tmp_path):
    """--resize-mode warp (Caffe's preset) averages the warped images: on non-square ones
    that is another mean than the central crops', each equal to Pillow's own resize."""
    root = _banded_tree(tmp_path / "banded")
    files = sorted((root / "train" / "a").glob("*.png"))
    warp = compute_stats(str(root), size=32, resize_mode="warp")
    crop = compute_stats(str(root), size=32, resize_mode="square")
    assert (warp.resize_mode, warp.resize, crop.resize_mode, crop.resize) == (
        "warp",
        32,
        "square",
        32,
    )
    for stats, is_warp in ((warp, True), (crop, False)):
        ref_image, ref_mean = _reference(files, 32, is_warp)
        np.testing.assert_allclose(stats.mean_image, ref_image, atol=1e-6)
        np.testing.assert_allclose(stats.mean, ref_mean, atol=1e-9)
    assert warp.mean[0] - crop.mean[0] > 0.2  # the red bands: in the warp only
    assert np.abs(warp.mean_image - crop.mean_image).max() > 0.5
    assert compute_stats(str(root), size=32, resize_mode="shorter").to_dict() == crop.to_dict()


def test_the_cache_keeps_each_resize_apart(tmp_path, monkeypatch):
    """Statistics are cached per resize mode and say how they were made: a warp run never
    gets the crops' statistics cached before it, nor the reverse."""
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    root = _banded_tree(tmp_path / "banded")
    crop = resolve_stats(root)  # the default: the paper's central square
    assert load_stats(root, "warp") is None
    warp = resolve_stats(root, resize_mode="warp")
    assert warp.resize_mode == "warp" and warp.mean[0] > crop.mean[0] + 0.2
    assert (root / "stats-warp.json").is_file() and (root / "mean_image-warp.npy").is_file()
    assert load_stats(root, "warp").to_dict() == warp.to_dict()
    assert load_stats(root, "square").to_dict() == crop.to_dict()
    assert load_stats(root, "shorter").to_dict() == crop.to_dict()
    recorded = json.loads((root / "stats-warp.json").read_text())
    assert recorded["resize_mode"] == "warp" and recorded["resize"] == 256
    assert recorded["mean_image"]["file"] == "mean_image-warp.npy"
    # a file whose record names another resize is not taken for this one
    (root / "stats.json").write_text((root / "stats-warp.json").read_text())
    assert load_stats(root, "square") is None


def test_a_warp_run_records_warped_statistics(tmp_path, monkeypatch, train_config):
    """alexnet train --resize-mode warp on non-square images: the checkpoint's statistics
    are the warped ones, recorded as such."""
    import torch

    from alexnet.engine.train import train

    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    root = _banded_tree(tmp_path / "banded", n=4)
    resolve_stats(root)  # crop statistics cached first
    out = tmp_path / "run"
    train(train_config(root, out, epochs=1, batch_size=2, resize_mode="warp", normalize="pixel"))
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    stats = state["preprocessing"]["stats"]
    assert stats["resize_mode"] == "warp"
    assert stats["mean"] == pytest.approx(list(load_stats(root, "warp").mean))
