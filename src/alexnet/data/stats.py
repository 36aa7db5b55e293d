"""Training-set statistics: the mean (per channel and the paper's per-pixel mean image),
the per-channel std, and the eigen-decomposition of the RGB covariance for PCA lighting.

§2: "subtracting the mean activity over the training set from each pixel";
§4.1: "perform PCA on the set of RGB pixel values throughout the ImageNet training
set". All values are on the 0-1 scale of ``pixel / 255``; pixels are taken after the
run's 256x256 resize, i.e. what the network's crops are cut from: the paper's shorter side
and central square ("square", also for torchvision's "shorter", whose crops come from the
central region) or Caffe's warp of the whole image ("warp"). The two differ on non-square
images, so each is made, cached and recorded (``resize_mode``, ``resize``) on its own.

Files: ``stats.json`` (+ ``mean_image.npy``, (3, S, S) float32) for "square" and
``stats-warp.json`` (+ ``mean_image-warp.npy``) for "warp", in a packed store, next to an
ImageFolder root, or, where that folder is read-only, in
``$ALEXNET_CACHE_DIR/stats/<hash of the path>/`` (default ``~/.cache/alexnet``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alexnet.errors import UserError

from ._paths import cache_dir

__all__ = [
    "IMAGENET_STATS",
    "DatasetStats",
    "check_stats_dict",
    "compute_stats",
    "load_stats",
    "resolve_stats",
    "stats_dir",
    "stats_mode",
]

log = logging.getLogger(__name__)
STATS_FILE, MEAN_IMAGE_FILE = "stats.json", "mean_image.npy"
STATS_MODES = ("square", "warp")  # the resizes statistics are made with
Triple = tuple[float, float, float]


def stats_mode(resize_mode: str) -> str:
    """The resize a run's statistics are made with: "warp" for ``--resize-mode warp``,
    else "square" (the paper's; "shorter"'s crops come from the same central region)."""
    return "warp" if resize_mode == "warp" else "square"


def stats_files(mode: str) -> tuple[str, str]:
    """(statistics, mean image) file names of the statistics made with resize ``mode``."""
    if mode == "square":
        return STATS_FILE, MEAN_IMAGE_FILE
    return f"stats-{mode}.json", f"mean_image-{mode}.npy"


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
    resize_mode: str = ""  # how the images were resized (STATS_MODES); "" not recorded
    resize: int = 0  # to this side; 0 not recorded

    def to_dict(self, embed_mean_image: bool = False) -> dict[str, Any]:
        """JSON-ready values. The mean image is named by file, or with ``embed_mean_image``
        carried inline (base64 float32, ~1 MB at 256x256: for checkpoints of "pixel" runs)."""
        d = {k: getattr(self, k) for k in ("mean", "std", "eigval", "eigvec", "num_images")}
        d = {k: np.asarray(v).tolist() for k, v in d.items()}
        d["source"] = self.source
        if self.resize_mode:
            d["resize_mode"], d["resize"] = self.resize_mode, self.resize
        if self.mean_image is not None:
            name = stats_files(self.resize_mode or "square")[1]
            d["mean_image"] = {"file": name, "shape": list(self.mean_image.shape)}
            if embed_mean_image:
                raw = np.ascontiguousarray(self.mean_image, dtype="<f4").tobytes()
                d["mean_image"]["base64"] = base64.b64encode(raw).decode("ascii")
        return d

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], mean_image: np.ndarray | None = None, source: str = "statistics"
    ) -> DatasetStats:
        """The statistics ``d`` holds, checked first (:func:`check_stats_dict`)."""
        check_stats_dict(d, source)
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
            resize_mode=str(d.get("resize_mode", "")),
            resize=int(d.get("resize", 0)),
        )

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the statistics file (+ mean image) of their resize mode (``stats_files``)
        into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stats_name, image_name = stats_files(self.resize_mode or "square")
        if self.mean_image is not None:
            _atomic_write(directory / image_name, lambda f: np.save(f, self.mean_image))
        text = json.dumps(self.to_dict(), indent=2).encode()
        _atomic_write(directory / stats_name, lambda f: f.write(text))
        return directory / stats_name

    @classmethod
    def load(cls, directory: str | os.PathLike, resize_mode: str = "square") -> DatasetStats | None:
        """The statistics made with ``resize_mode`` ("square" or "warp") in ``directory``,
        None where there are none (a file recording another mode is not them: files
        without the record are the "square" ones, all there were before "warp"); a file
        that is not what it claims is a one-line UserError naming it."""
        stats_name, image_name = stats_files(resize_mode)
        path = Path(directory) / stats_name
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise UserError(f"{path} is not valid JSON ({_first_line(e)}){_REDO}") from None
        check_stats_dict(d, str(path))
        if d.get("resize_mode", "square") != resize_mode:
            log.warning(
                "%s records resize_mode %r, not %r: not used", path, d["resize_mode"], resize_mode
            )
            return None
        img, npy = None, Path(directory) / image_name
        if d.get("mean_image") is not None and npy.is_file():
            img = _load_mean_image(npy, tuple(d["mean_image"]["shape"]))
        return cls.from_dict(d, img, str(path))


# ---- the statistics schema: every field checked for type and range before use ----

MAX_MEAN_IMAGE_SIDE = 4096  # a mean image is (3, R, R) at the resize side R
_REDO = "; delete it and the statistics are computed again"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


def _is_number(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float's range
        return False


def _is_triple(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_number(x) for x in v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_stats_dict(d: Any, source: str, prefix: str = "") -> None:
    """The schema of statistics (``DatasetStats.to_dict``: ``stats.json``, a checkpoint's
    ``preprocessing.stats``, a sidecar's): mean, std (> 0), eigval (>= 0) three finite
    numbers each, eigvec three such rows, num_images an int >= 0, source a string, and a
    mean image (3, S, S) with S <= 4096 whose inline float32 bytes have that size. Every
    wrong field is named in one UserError: ``<source>: <prefix><field> ...``."""
    if not isinstance(d, dict):
        raise UserError(f"{source}: {prefix or 'statistics'} must be a mapping, got {_short(d)}")
    errors = []
    for key in ("mean", "std", "eigval"):
        v = d.get(key)
        if not _is_triple(v):
            errors.append(f"{prefix}{key} must be 3 finite numbers, got {_short(v)}")
        elif key == "std" and min(v) <= 0:
            errors.append(f"{prefix}std must be > 0, got {_short(v)}")
        elif key == "eigval" and min(v) < 0:
            errors.append(f"{prefix}eigval must be >= 0, got {_short(v)}")
    vec = d.get("eigvec")
    if not (isinstance(vec, (list, tuple)) and len(vec) == 3 and all(map(_is_triple, vec))):
        errors.append(f"{prefix}eigvec must be 3 rows of 3 finite numbers, got {_short(vec)}")
    n = d.get("num_images", 0)
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
        errors.append(f"{prefix}num_images must be an int >= 0, got {_short(n)}")
    if not isinstance(d.get("source", ""), str):
        errors.append(f"{prefix}source must be a string, got {_short(d.get('source'))}")
    if d.get("resize_mode", "square") not in STATS_MODES:
        one_of = " or ".join(STATS_MODES)
        errors.append(f"{prefix}resize_mode must be {one_of}, got {_short(d['resize_mode'])}")
    r = d.get("resize", 0)
    if not (isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= MAX_MEAN_IMAGE_SIDE):
        errors.append(f"{prefix}resize must be an int in 0..{MAX_MEAN_IMAGE_SIDE}, got {_short(r)}")
    problem = _mean_image_problem(d.get("mean_image"))
    if problem:
        errors.append(f"{prefix}mean_image{problem}")
    if errors:
        raise UserError(f"{source}: {'; '.join(errors)}")


def _mean_image_problem(m: Any) -> str:
    """What is wrong with a ``mean_image`` entry ("" when nothing)."""
    if m is None:
        return ""
    if not isinstance(m, dict):
        return f" must be a mapping, got {_short(m)}"
    shape = m.get("shape")
    ok = isinstance(shape, (list, tuple)) and len(shape) == 3 and shape[0] == 3
    ok = ok and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
    if not ok or shape[1] != shape[2] or not 1 <= shape[1] <= MAX_MEAN_IMAGE_SIDE:
        return f".shape must be [3, S, S] with 1 <= S <= {MAX_MEAN_IMAGE_SIDE}, got {_short(shape)}"
    if "base64" not in m:
        return ""
    if not isinstance(m["base64"], str):
        return f".base64 must be a string, got {_short(m['base64'])}"
    try:
        raw = base64.b64decode(m["base64"], validate=True)
    except ValueError:
        return ".base64 is not base64"
    if len(raw) != 4 * 3 * shape[1] * shape[2]:
        return f".base64 holds {len(raw)} bytes, not the {4 * 3 * shape[1] ** 2} of float32 {shape}"
    if not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
        return " holds NaN or infinite values"
    return ""


def _load_mean_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """``mean_image.npy`` as float32, its shape the one ``stats.json`` states; a truncated or
    foreign file is a UserError naming it (memory-mapped first: nothing is allocated for a
    shape the file cannot hold)."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - ValueError, EOFError, BadZipFile (a "PK" file)
        why = _first_line(e)
        raise UserError(f"{path} is truncated or not a .npy file ({why}){_REDO}") from None
    if not isinstance(a, np.ndarray):  # an .npz archive
        a.close()
        raise UserError(f"{path} is an .npz archive, not a .npy file{_REDO}")
    if a.shape != shape or a.dtype.kind != "f":
        what = f"{a.dtype} {a.shape}"
        raise UserError(f"{path} holds {what}, not the float {shape} stats.json states{_REDO}")
    img = np.array(a, dtype=np.float32)
    if not np.isfinite(img).all():
        raise UserError(f"{path} holds NaN or infinite values{_REDO}")
    return img


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


def load_stats(source: str | os.PathLike, resize_mode: str = "square") -> DatasetStats | None:
    """The cached statistics of a data source (ImageFolder root, store, ``cifar10:DIR``, ...)
    made with the resize of ``resize_mode`` (``stats_mode``)."""
    for d in stats_dir(source):
        stats = DatasetStats.load(d, stats_mode(resize_mode))
        if stats is not None:
            return stats
    return None


def resolve_stats(
    source: str | os.PathLike,
    *,
    resize_mode: str = "square",
    compute: bool = True,
    max_images: int = 10_000,
) -> DatasetStats:
    """Cached statistics made with the resize of ``resize_mode``; else computed from the
    training split with that resize and cached (``compute``); else ``IMAGENET_STATS``."""
    stats = load_stats(source, resize_mode)
    if stats is not None:
        return stats
    if not compute:
        return IMAGENET_STATS
    stats = compute_stats(source, max_images=max_images, resize_mode=resize_mode)
    for d in stats_dir(source):
        try:
            stats.save(d)
            log.info("dataset statistics cached in %s", d)
            break
        except OSError:
            continue
    return stats


def compute_stats(
    data: Any,
    max_images: int = 10_000,
    *,
    size: int = 256,
    resize_mode: str = "square",
    seed: int = 0,
) -> DatasetStats:
    """Statistics of up to ``max_images`` images (a seeded uniform subset) of ``data``.

    ``data``: a data source for ``build_dataset`` (its ``train`` split is used), or a
    dataset whose items are ``(PIL image or uint8 (3, H, W) tensor, label)``
    (built with ``transform=None``). Each image is resized to ``size``x``size`` as the
    run's ``resize_mode`` does (``stats_mode``: §2's central square, or Caffe's warp; a
    no-op for a packed store of that size). Pixel sums are accumulated in float64.
    """
    from .images import resized_uint8

    mode = stats_mode(resize_mode)

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
    from alexnet.progress import progress

    for i in progress(idx, desc=f"statistics of {source} (mean, PCA)", unit="img"):
        a = resized_uint8(data[int(i)][0], size, mode).numpy()  # (3, S, S) uint8
        x = a.astype(np.float64) / 255.0
        image_sum += x
        flat = x.reshape(3, -1)  # (3, S*S)
        s1 += flat.sum(1)
        s2 += flat @ flat.T
    stats = _finish(s1, s2, image_sum, len(idx), source)
    stats.resize_mode, stats.resize = mode, size
    return stats


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
