"""The demo dataset: drawn objects in ImageFolder layout, generated on the fly.

Ten classes told apart by shape, not colour: what first-layer filters pick up
(outline, curvature, corners, stripe orientation, number of parts)::

    disc  ring  square  triangle  cross  star  hstripes  vstripes  checker  dots

Per image, varied at random: the two colours (object and background are drawn
from the same distribution, at least 0.35 apart in luminance, and randomly swapped,
so a pixel or the mean colour says nothing about the class), size, position,
rotation (stripes stay within 15 degrees of their orientation, which flips keep), a
low-frequency background texture, pixel noise and JPEG compression.

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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from alexnet.errors import UserError

from ._paths import default_demo_root
from .images import display_path

__all__ = ["DEMO_CLASSES", "DemoSpec", "default_demo_root", "draw_demo_image", "make_demo_dataset"]

DEMO_CLASSES = (
    "disc",
    "ring",
    "square",
    "triangle",
    "cross",
    "star",
    "hstripes",
    "vstripes",
    "checker",
    "dots",
)
SPEC_FILE, VERSION = "demo_spec.json", 2
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 0
    train_per_class: int = 200
    val_per_class: int = 50
    num_classes: int = 10
    size: int = 256
    version: int = VERSION


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
    errors = []
    if not 2 <= num_classes <= len(DEMO_CLASSES):
        errors.append(f"num_classes must be 2..{len(DEMO_CLASSES)}, got {num_classes}")
    if train_per_class < 1 or val_per_class < 1:
        errors.append("train_per_class and val_per_class must be >= 1")
    if size < 32:
        errors.append(f"size must be >= 32, got {size}")
    if errors:
        raise UserError("; ".join(errors))
    root = Path(root)
    if _existing_spec(root) == asdict(spec):
        return root
    if root.exists() and any(root.iterdir()) and _existing_spec(root) is None:
        raise UserError(f"{display_path(root)} is not empty and holds no demo data; pick another")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.tmp-", dir=root.parent))
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
        (tmp / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2))
        if root.exists():  # an older demo (its spec differs) or an empty folder
            shutil.rmtree(root)
        os.rename(tmp, root)
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


def _background(rng: np.random.Generator, colour: np.ndarray, size: int) -> Image.Image:
    """colour + smooth random blotches (a 6x6 grid, bicubic upsampling) -> RGB (S, S)."""
    amp = rng.uniform(0.03, 0.12)
    grid = colour + rng.normal(0.0, amp, (6, 6, 3))
    grid = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grid, "RGB").resize((size, size), Image.BICUBIC)


def _mask(name: str, rng: np.random.Generator, size: int) -> Image.Image:
    """The object's coverage, an "L" image (S, S), 255 inside (2x supersampled edges)."""
    s2 = 2 * size
    cx, cy = rng.uniform(0.35, 0.65, 2) * s2
    r = rng.uniform(0.15, 0.27) * s2
    theta = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("L", (s2, s2), 0)
    draw = ImageDraw.Draw(canvas)

    def poly(radii: list[float], phase: float = theta) -> list[tuple[float, float]]:
        n = len(radii)
        return [
            (
                cx + q * math.cos(phase + 2 * math.pi * k / n),
                cy + q * math.sin(phase + 2 * math.pi * k / n),
            )
            for k, q in enumerate(radii)
        ]

    if name == "disc":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif name == "ring":
        inner = r * rng.uniform(0.55, 0.7)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif name == "square":
        draw.polygon(poly([r * 1.05] * 4), fill=255)
    elif name == "triangle":
        draw.polygon(poly([r * 1.15] * 3), fill=255)
    elif name == "cross":
        w = 0.22 * r
        for phase in (theta, theta + math.pi / 2):
            c, s = math.cos(phase), math.sin(phase)
            pts = [(-r * 1.1, -w), (r * 1.1, -w), (r * 1.1, w), (-r * 1.1, w)]
            draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=255)
    elif name == "star":
        draw.polygon(poly([r * 1.15, r * 0.45] * 5), fill=255)
    elif name == "dots":
        small = r * 0.32
        for k in range(3):
            a = theta + 2 * math.pi * k / 3 + rng.uniform(-0.3, 0.3)
            x, y = cx + 0.75 * r * math.cos(a), cy + 0.75 * r * math.sin(a)
            draw.ellipse((x - small, y - small, x + small, y + small), fill=255)
    else:  # patterned discs: hstripes, vstripes, checker
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    m = canvas.resize((size, size), Image.BOX)
    if name in ("hstripes", "vstripes", "checker"):
        m = Image.fromarray((np.asarray(m) * _pattern(name, rng, size, r / 2)).astype(np.uint8))
    return m


def _pattern(name: str, rng: np.random.Generator, size: int, r: float) -> np.ndarray:
    """Stripes (within 15 degrees of horizontal/vertical) or a rotated checkerboard, 0/1."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if name == "checker":
        angle = rng.uniform(0, math.pi / 2)
    else:
        angle = rng.uniform(-math.pi / 12, math.pi / 12) + (
            math.pi / 2 if name == "vstripes" else 0
        )
    c, s = math.cos(angle), math.sin(angle)
    u, v = xx * c + yy * s, -xx * s + yy * c  # u along the stripes, v across
    period = r * rng.uniform(0.45, 0.6)
    phase = rng.uniform(0, 1)
    across = np.floor(v / period + phase)
    if name == "checker":
        across = across + np.floor(u / period + phase)
    return (across % 2).astype(np.float32)


def draw_demo_image(name: str, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """One RGB image of class ``name`` from ``rng``."""
    bg, fg = _two_colours(rng)
    img = _background(rng, bg, size)
    mask = _mask(name, rng, size)
    tint = fg + rng.normal(0, 0.03, 3)
    obj = Image.new("RGB", (size, size), tuple(np.clip(tint * 255 + 0.5, 0, 255).astype(int)))
    img = Image.composite(obj, img, mask)
    # pixel noise, triangular (sum of two uniform bytes), std sigma * 255: integer arithmetic
    sigma = rng.uniform(0.01, 0.06)
    u = np.frombuffer(rng.bytes(2 * size * size * 3), np.uint8).reshape(2, size, size, 3)
    tri = u[0].astype(np.int16) + u[1] - 255  # std 104.5
    noise = (tri * int(round(sigma * 255 / 104.5 * 256))) >> 8
    out = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")
