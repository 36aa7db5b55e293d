"""Training-set statistics: the mean (per channel and the paper's per-pixel mean image),
the per-channel std, and the eigen-decomposition of the RGB covariance for PCA lighting.

§2: "subtracting the mean activity over the training set from each pixel";
§4.1: "perform PCA on the set of RGB pixel values throughout the ImageNet training
set". All values are on the 0-1 scale of ``pixel / 255``; pixels are taken after the
paper's 256x256 rescale, i.e. what the network's crops are cut from.

Files: ``stats.json`` (+ ``mean_image.npy``, (3, S, S) float32) in a packed store,
next to an ImageFolder root, or, where that folder is read-only, in
``$ALEXNET_CACHE_DIR/stats/<hash of the path>/`` (default ``~/.cache/alexnet``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._paths import cache_dir

__all__ = [
    "IMAGENET_STATS",
    "DatasetStats",
    "compute_stats",
    "load_stats",
    "resolve_stats",
    "stats_dir",
]

log = logging.getLogger(__name__)
STATS_FILE, MEAN_IMAGE_FILE = "stats.json", "mean_image.npy"
Triple = tuple[float, float, float]


@dataclass
class DatasetStats:
    """``eigvec[:, i]`` (a column) is the eigenvector of ``eigval[i]``, largest first, so
    the lighting offset is ``eigvec @ (alpha * eigval)``, §4.1's ``[p1 p2 p3][a1 l1, ...]^T``.
    """

    mean: Triple
    std: Triple
    eigval: Triple
    eigvec: tuple[Triple, Triple, Triple]
    mean_image: np.ndarray | None = field(default=None, repr=False)  # (3, S, S) float32, 0-1
    num_images: int = 0
    source: str = ""

    def to_dict(self, embed_mean_image: bool = False) -> dict[str, Any]:
        """JSON-ready values. The mean image is named by file, or with ``embed_mean_image``
        carried inline (base64 float32, ~1 MB at 256x256: for checkpoints of "pixel" runs)."""
        d = {k: getattr(self, k) for k in ("mean", "std", "eigval", "eigvec", "num_images")}
        d = {k: np.asarray(v).tolist() for k, v in d.items()}
        d["source"] = self.source
        if self.mean_image is not None:
            d["mean_image"] = {"file": MEAN_IMAGE_FILE, "shape": list(self.mean_image.shape)}
            if embed_mean_image:
                raw = np.ascontiguousarray(self.mean_image, dtype="<f4").tobytes()
                d["mean_image"]["base64"] = base64.b64encode(raw).decode("ascii")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], mean_image: np.ndarray | None = None) -> DatasetStats:
        inline = d.get("mean_image") or {}
        if mean_image is None and "base64" in inline:
            raw = base64.b64decode(inline["base64"])
            mean_image = np.frombuffer(raw, dtype="<f4").reshape(inline["shape"]).astype(np.float32)
        return cls(
            mean=tuple(map(float, d["mean"])),
            std=tuple(map(float, d["std"])),
            eigval=tuple(map(float, d["eigval"])),
            eigvec=tuple(tuple(map(float, row)) for row in d["eigvec"]),
            mean_image=mean_image,
            num_images=int(d.get("num_images", 0)),
            source=str(d.get("source", "")),
        )

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``stats.json`` (+ ``mean_image.npy``) into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.mean_image is not None:
            _atomic_write(directory / MEAN_IMAGE_FILE, lambda f: np.save(f, self.mean_image))
        text = json.dumps(self.to_dict(), indent=2).encode()
        _atomic_write(directory / STATS_FILE, lambda f: f.write(text))
        return directory / STATS_FILE

    @classmethod
    def load(cls, directory: str | os.PathLike) -> DatasetStats | None:
        path = Path(directory) / STATS_FILE
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        img = None
        if "mean_image" in d and (Path(directory) / MEAN_IMAGE_FILE).is_file():
            img = np.load(Path(directory) / MEAN_IMAGE_FILE).astype(np.float32)
        return cls.from_dict(d, img)


# ImageNet's fallback statistics, one covariance matrix: the mean is torchvision's; the
# eigenvectors and eigenvalues (0-1 scale) are the PCA that fb.resnet.torch (and most
# AlexNet ports since) use for lighting; the std is the square root of the diagonal of
# that same covariance, eigvec @ diag(eigval) @ eigvec.T (tests/data/test_dataset_stats.py),
# so the variances of the channels add up to the eigenvalues' sum. torchvision's own
# (0.229, 0.224, 0.225) average each image's std and are smaller; its weights keep them
# (``export.torchvision_weights.TORCHVISION_STATS``). CIFAR-10's training set gives
# eigval (0.174, 0.0124, 0.0026) and eigenvectors within a few degrees of these
# (``alexnet prepare --stats``).
IMAGENET_STATS = DatasetStats(
    mean=(0.485, 0.456, 0.406),
    std=(0.2837, 0.2763, 0.2897),
    eigval=(0.2175, 0.0188, 0.0045),
    eigvec=((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203)),
    source="ImageNet fallback (torchvision mean; fb.resnet.torch PCA; std from that PCA)",
)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stats_dir(source: str | os.PathLike) -> list[Path]:
    """Where the statistics of ``source`` may live, in the order they are looked up."""
    from .sources import source_root

    root = source_root(source)
    key = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
    return [root, cache_dir() / "stats" / key]


def load_stats(source: str | os.PathLike) -> DatasetStats | None:
    """The cached statistics of a data source (ImageFolder root, store, ``cifar10:DIR``, ...)."""
    for d in stats_dir(source):
        stats = DatasetStats.load(d)
        if stats is not None:
            return stats
    return None


def resolve_stats(
    source: str | os.PathLike, *, compute: bool = True, max_images: int = 10_000
) -> DatasetStats:
    """Cached statistics; else computed from the training split and cached (``compute``);
    else ``IMAGENET_STATS``."""
    stats = load_stats(source)
    if stats is not None:
        return stats
    if not compute:
        return IMAGENET_STATS
    stats = compute_stats(source, max_images=max_images)
    for d in stats_dir(source):
        try:
            stats.save(d)
            log.info("dataset statistics cached in %s", d)
            break
        except OSError:
            continue
    return stats


def compute_stats(
    data: Any, max_images: int = 10_000, *, size: int = 256, seed: int = 0
) -> DatasetStats:
    """Statistics of up to ``max_images`` images (a seeded uniform subset) of ``data``.

    ``data``: a data source for ``build_dataset`` (its ``train`` split is used), or a
    dataset whose items are ``(PIL image or uint8 (3, H, W) tensor, label)``
    (built with ``transform=None``). Each image is rescaled to ``size``x``size`` as in
    §2 (a no-op for a packed store of that size). Pixel sums are accumulated in float64.
    """
    from .images import resize_center_crop

    if isinstance(data, (str, os.PathLike)):
        from .sources import build_dataset

        source = os.fspath(data)
        # statistics over the readable images: an unreadable one is replaced by the next
        data = build_dataset(data, "train", skip_bad=True)
    else:
        source = type(data).__name__
    n = len(data)
    if n == 0:
        raise ValueError("compute_stats: the dataset is empty")
    idx = np.arange(n)
    if n > max_images:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
    s1, s2 = np.zeros(3), np.zeros((3, 3))
    image_sum = np.zeros((3, size, size))
    for i in idx:
        img = data[int(i)][0]
        if isinstance(img, torch.Tensor):
            a = img.numpy()
            if a.shape[1:] != (size, size):
                from torchvision.transforms.v2.functional import to_pil_image

                a = np.asarray(resize_center_crop(to_pil_image(img), size)).transpose(2, 0, 1)
        else:
            a = np.asarray(resize_center_crop(img, size)).transpose(2, 0, 1)
        x = a.astype(np.float64) / 255.0  # (3, S, S)
        image_sum += x
        flat = x.reshape(3, -1)  # (3, S*S)
        s1 += flat.sum(1)
        s2 += flat @ flat.T
    return _finish(s1, s2, image_sum, len(idx), source)


def _finish(s1, s2, image_sum, count: int, source: str) -> DatasetStats:
    pixels = count * image_sum.shape[1] * image_sum.shape[2]
    mean = s1 / pixels
    cov = s2 / pixels - np.outer(mean, mean)  # (3, 3), population covariance
    eigval, eigvec = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    eigvec = eigvec * np.where(eigvec.sum(0) < 0, -1.0, 1.0)  # a stable sign per vector
    return DatasetStats(
        mean=tuple(mean.tolist()),
        std=tuple(np.sqrt(np.clip(np.diag(cov), 0, None)).tolist()),
        eigval=tuple(eigval.tolist()),
        eigvec=tuple(tuple(r) for r in eigvec.tolist()),
        mean_image=(image_sum / count).astype(np.float32),
        num_images=count,
        source=source,
    )
