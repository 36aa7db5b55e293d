"""The demo dataset: ten textures in ImageFolder layout, generated on the fly.

Ten classes told apart by texture, not colour: what first-layer filters pick up
(orientation, period, the shape of the repeating element)::

    hstripes  vstripes  diagonal  checker  diamonds  grid  dots  rings  blotches  speckle

The task is chosen so that the paper's 60M-parameter network, trained from
scratch on 2,000 images, leaves chance within its first epoch on a 2-core CPU: with
drawn shapes (disc, square, star, ...) it was still at 73% validation error after
4 epochs. Every class maps to itself under a horizontal flip, the training
augmentation ("diagonal" holds both diagonals).

Per image, varied at random: the two colours (drawn from the same distribution, at
least 0.35 apart in luminance, in random order, so a pixel or the mean colour says
nothing about the class), the period (14-34 px at 256 px), phase, orientation
(within 10 degrees of the class's), smooth shading, pixel noise and JPEG compression.

Deterministic: image ``i`` of class ``c`` in a split depends only on
``(seed, split, c, i)`` (NumPy's seeded PCG64; this is data, not augmentation).
Written to ``root/{train,val}/<class>/NNNNN.jpg`` plus ``root/demo_spec.json``;
built in ``root.tmp-XXXX`` and renamed, and skipped when the spec already matches.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from numbers import Integral
from pathlib import Path

import numpy as np
from PIL import Image

from alexnet.errors import UserError

from ._paths import cache_dir
from .images import display_path

__all__ = [
    "DEMO_CLASSES",
    "DemoSpec",
    "default_demo_root",
    "demo_root",
    "draw_demo_image",
    "make_demo_dataset",
]

DEMO_CLASSES = (
    "hstripes",
    "vstripes",
    "diagonal",
    "checker",
    "diamonds",
    "grid",
    "dots",
    "rings",
    "blotches",
    "speckle",
)
SPEC_FILE, VERSION = "demo_spec.json", 3
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 0
    train_per_class: int = 200
    val_per_class: int = 50
    num_classes: int = 10
    size: int = 256
    version: int = VERSION


def demo_option_errors(options: dict) -> list[str]:
    """What is wrong with ``make_demo_dataset`` keywords given as a mapping (``--demo``)."""
    names = [f.name for f in fields(DemoSpec) if f.name != "version"]
    listed = ", ".join(names)
    errors = [f"unknown demo option {k!r} (options: {listed})" for k in options if k not in names]
    bad_type = [
        k
        for k in names
        if k in options and (isinstance(options[k], bool) or not isinstance(options[k], Integral))
    ]
    errors += [f"demo option {k} must be an integer, got {options[k]!r}" for k in bad_type]
    if errors:
        return errors
    n = options.get("num_classes", DemoSpec.num_classes)
    if not 2 <= n <= len(DEMO_CLASSES):
        errors.append(f"num_classes must be 2..{len(DEMO_CLASSES)}, got {n}")
    for k in ("train_per_class", "val_per_class"):
        if options.get(k, 1) < 1:
            errors.append(f"{k} must be >= 1, got {options[k]}")
    if options.get("size", 32) < 32:
        errors.append(f"size must be >= 32, got {options['size']}")
    return errors


def demo_root(options: dict | None = None) -> Path:
    """Where the demo dataset with ``options`` (``make_demo_dataset``'s keywords) lives in
    alexnet's cache folder: ``demo`` for the defaults, ``demo-seed1-size128`` otherwise.
    ``alexnet train`` without --data, ``--data demo`` and the run report all use it."""
    defaults = asdict(DemoSpec())
    changed = {k: v for k, v in sorted((options or {}).items()) if defaults.get(k) != v}
    tag = "".join(f"-{k}{v}" for k, v in changed.items())
    return cache_dir() / f"demo{tag}"


def default_demo_root(seed: int = 0) -> Path:
    """The demo folder of the default options (with ``seed``)."""
    return demo_root({"seed": seed})


def make_demo_dataset(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    train_per_class: int = 200,
    val_per_class: int = 50,
    num_classes: int = 10,
    size: int = 256,
) -> Path:
    """Generate the demo ImageFolder at ``root`` (nothing to do if it is already there)."""
    spec = DemoSpec(seed, train_per_class, val_per_class, num_classes, size)
    errors = demo_option_errors({k: v for k, v in asdict(spec).items() if k != "version"})
    if errors:
        raise UserError("; ".join(errors))
    root = Path(root)
    if _existing_spec(root) == asdict(spec):
        return root
    if root.exists() and any(root.iterdir()) and _existing_spec(root) is None:
        raise UserError(f"{display_path(root)} is not empty and holds no demo data; pick another")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.tmp-", dir=root.parent))
    from alexnet.progress import progress

    total = num_classes * (train_per_class + val_per_class)
    bar = progress(
        total=total, desc=f"generating the demo dataset in {display_path(root)}", unit="img"
    )
    try:
        for split_code, (split, n) in enumerate(
            (("train", train_per_class), ("val", val_per_class))
        ):
            for c in range(num_classes):
                folder = tmp / split / DEMO_CLASSES[c]
                folder.mkdir(parents=True)
                for i in range(n):
                    rng = np.random.default_rng([seed, split_code, c, i])
                    img = draw_demo_image(DEMO_CLASSES[c], rng, size)
                    img.save(folder / f"{i:05d}.jpg", quality=90)
                    bar.update()
        (tmp / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2))
        if root.exists():  # an older demo (its spec differs) or an empty folder
            shutil.rmtree(root)
        os.rename(tmp, root)
        bar.close()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _existing_spec(root: Path) -> dict | None:
    try:
        return json.loads((root / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return None


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two RGB colours in 0-1, >= 0.35 apart in luminance, in random order."""
    while True:
        a, b = rng.random(3), rng.random(3)
        if abs(_LUMA @ a - _LUMA @ b) >= 0.35:
            return (a, b) if rng.random() < 0.5 else (b, a)


def _soft(signed: np.ndarray) -> np.ndarray:
    """A signed distance in pixels -> coverage 0..1 with a 1-pixel anti-aliased edge."""
    return _clip(signed + 0.5, 0.0, 1.0)


def _square_wave(t: np.ndarray, period: float) -> np.ndarray:
    """0/1 bands of width period/2 across the coordinate ``t`` (pixels), soft edges.
    sin(2 pi t / P) * P / (2 pi) is the signed distance to the nearest band edge
    near the edge, which is all the anti-aliasing needs."""
    return _soft(np.sin(2 * math.pi * t / period) * period / (2 * math.pi))


def _pattern(name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """The class's texture as coverage 0..1, (S, S) float32. Orientations are
    jittered by up to 10 degrees; every class maps to itself under a horizontal
    flip (the training augmentation), which is why "diagonal" holds both diagonals."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(14.0, 34.0)  # pixels at 256 px: 1.3-3 conv1 filter widths
    jitter = rng.uniform(-1.0, 1.0) * math.pi / 18
    base = {
        "hstripes": 0.0,
        "vstripes": math.pi / 2,
        "diagonal": math.pi / 4 * rng.choice((1, 3)),
        "checker": 0.0,
        "diamonds": math.pi / 4,
        "grid": 0.0,
    }.get(name, rng.uniform(0, math.pi))
    theta = base + jitter
    c, s = math.cos(theta), math.sin(theta)
    ox, oy = rng.uniform(0, period, 2)
    u, v = (xx + ox) * c + (yy + oy) * s, -(xx + ox) * s + (yy + oy) * c  # u along, v across
    if name in ("hstripes", "vstripes", "diagonal"):
        return _square_wave(v, period)
    if name in ("checker", "diamonds"):
        a, b = _square_wave(u, period), _square_wave(v, period)
        return a * b + (1 - a) * (1 - b)
    if name == "grid":  # thin lines both ways: distance to the nearest line < width / 2
        half = period * rng.uniform(0.08, 0.14)

        def lines(t: np.ndarray) -> np.ndarray:
            return _soft(half - np.abs((t % period) - period / 2))

        a, b = lines(u), lines(v)
        return a + b - a * b
    if name == "dots":  # discs on a rotated square lattice
        r = period * rng.uniform(0.22, 0.32)
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        return _soft(r - np.hypot(du, dv))
    if name == "rings":  # concentric rings around a centre anywhere near the image
        cx, cy = rng.uniform(-0.25, 1.25, 2) * size
        return _square_wave(np.hypot(xx - cx, yy - cy), period)
    # blotches (smooth, about period*2 across) and speckle (grains of 3-5 px): random
    # fields thresholded at their median, so both colours cover about half the image
    cells = size / (2 * period) if name == "blotches" else size / rng.uniform(3.0, 5.0)
    n = max(2, int(round(cells)) + 2)
    field = rng.normal(size=(n, n)).astype(np.float32)
    img = Image.fromarray(field, "F").resize((size, size), Image.BICUBIC)
    f = np.asarray(img)
    f = (f - np.median(f)) / (f.std() + 1e-6)
    edge = period / 4 if name == "blotches" else 1.5  # field units -> about a pixel
    return _soft(f * edge)


def draw_demo_image(name: str, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """One RGB image of class ``name`` from ``rng``: the texture in two random
    colours, under smooth random shading, with pixel noise."""
    if name not in DEMO_CLASSES:
        raise ValueError(f"unknown demo class {name!r}; known: {', '.join(DEMO_CLASSES)}")
    bg, fg = _two_colours(rng)
    m = _pattern(name, rng, size)  # (S, S) float32
    # bg * (1 - m) + fg * m in float64, one (S, S) plane per colour channel: the same bits
    # as broadcasting (S, S, 1) against (3,), at a third of the time
    img = bg[:, None, None] * (1 - m).astype(np.float64)
    img += fg[:, None, None] * m.astype(np.float64)  # (3, S, S) in 0..1
    # shading: a smooth multiplicative field, 3x3 grid upsampled, 0.75..1.25
    grid = rng.uniform(0.75, 1.25, (3, 3)).astype(np.float32)
    shade = np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BILINEAR))
    img *= shade.astype(np.float64)
    # pixel noise, triangular (sum of two uniform bytes), std sigma * 255: integer arithmetic
    sigma = rng.uniform(0.01, 0.06)
    img *= 255
    img += 0.5
    u8 = _clip(img, 0, 255).astype(np.int16).transpose(1, 2, 0)  # (S, S, 3)
    u = np.frombuffer(rng.bytes(2 * size * size * 3), np.uint8).reshape(2, size, size, 3)
    tri = u[0].astype(np.int16) + u[1] - 255  # std 104.5
    tri *= int(round(sigma * 255 / 104.5 * 256))
    tri >>= 8
    tri += u8
    return Image.fromarray(_clip(tri, 0, 255).astype(np.uint8), "RGB")


def _clip(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip(a, lo, hi) in place, as two ufuncs (np.clip's dispatch cost more than the
    arithmetic on a 256x256 image)."""
    np.maximum(a, lo, out=a)
    return np.minimum(a, hi, out=a)
