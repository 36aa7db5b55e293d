"""Reading one image file into an RGB PIL image, and the three resizes to a uint8 tensor
(``RESIZE_MODES``: the paper's 256x256 rescale of §2, Caffe's warp, torchvision's shorter side;
``alexnet.data.transforms`` says what each does).

Every path that decodes a file goes through ``load_image``: the ImageFolder
datasets, ``prepare_store`` and ``compute_stats``. What it does with awkward input:

* greyscale (1, L), CMYK, YCbCr, LAB, HSV, palette (P) images: converted to RGB;
* 16-bit and 32-bit greyscale (I;16, I, F): scaled to 8 bits (values above 255
  are read as 16-bit and divided by 257), then RGB;
* transparency (RGBA, LA, PA, La, RGBa, P or L with a transparent colour):
  composited onto a white background;
* an EXIF orientation tag: applied (``ImageOps.exif_transpose``), as a viewer would;
* an animated GIF/WebP/PNG: its first frame;
* a 0-byte, truncated, corrupt or non-image file: ``BadImageError`` naming the file;
* a file in any other format than ``FORMATS`` (JPEG, PNG, BMP, PPM/PGM, TIFF, WebP,
  GIF), whatever its name: ``BadImageError``. Pillow is asked for those formats only
  (``Image.open(formats=...)``), so PostScript, EPS and PDF never reach Ghostscript;
* more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (89,478,485 by default, a
  decompression-bomb guard we keep), or a longer side more than ``MAX_ASPECT`` (100)
  times the shorter: ``BadImageError`` from the header, before any pixel is decoded.
  Why the shape matters: Pillow keeps an 8-byte pointer per row besides 4 bytes per
  pixel, so a 1x80,000,000 PNG (155 KB) took 2.3 GB to load where a square image of as
  many pixels takes 0.6 GB; and a shorter-side resize to 256 (``resize_mode: shorter``)
  makes 256 x 256*aspect pixels whatever the source's size (a 1x10,000 strip became
  655 M pixels). With the limit, rows cost at most 0.8 MB and that resize at most
  256x25,600 pixels;
* warnings from the decoders (bogus EXIF entries print two each): counted per file,
  not printed; the first few files with any are logged in one line each
  (``decoder_warnings()`` has the counts of this process).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from alexnet.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FORMATS",
    "MAX_ASPECT",
    "BadImageError",
    "decoder_warnings",
    "display_path",
    "is_image_file",
    "load_image",
    "resize_center_crop",
    "to_rgb",
]

# torchvision's IMG_EXTENSIONS plus .gif; matched case-insensitively (".JPEG" is ImageNet's).
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)

# The formats Pillow may open (its format ids; "PPM" reads PGM/PBM too, "JPEG" gives MPO for
# multi-picture JPEGs). Nothing else is tried, whatever a file is named.
FORMATS = ("JPEG", "PNG", "BMP", "PPM", "TIFF", "WEBP", "GIF")
_FORMAT_NAMES = "JPEG, PNG, BMP, PPM/PGM, TIFF, WebP and GIF"
MAX_ASPECT = 100  # longer side / shorter side
_SHOWN_WARNED_FILES = 5  # files whose decoder warnings are logged, per process

log = logging.getLogger(__name__)
_warned: dict[str, int] = {}  # file -> warnings its decoding gave (this process)

_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_WIDE_GREY_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


class BadImageError(UserError):
    """An image file that cannot be used: corrupt, truncated, not an image, or too large."""

    def __init__(self, message: str, exit_code: int = 1) -> None:  # one-argument form:
        super().__init__(message, exit_code)  # DataLoader re-raises worker errors as cls(msg)


def display_path(path: str | os.PathLike) -> str:
    """The path as text for a message; bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_image_file(name: str | os.PathLike) -> bool:
    return os.fsdecode(name).lower().endswith(IMAGE_EXTENSIONS)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB (rules in the module docstring). RGB input is returned as is."""
    if img.mode == "RGB":
        return img
    if img.mode in _WIDE_GREY_MODES:
        with np.errstate(invalid="ignore"):  # signalling NaNs in F images
            a = np.asarray(img).astype(np.float64)  # (H, W)
        a = np.nan_to_num(a, nan=0.0, posinf=65535.0, neginf=0.0)
        if img.mode.startswith("I;16") or a.max(initial=0.0) > 255:
            a = a / 257.0  # 16-bit range 0..65535 -> 0..255
        grey = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    if img.mode == "La":  # premultiplied alpha; Pillow converts it only to LA
        img = img.convert("LA")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | os.PathLike, *, draft_size: int | None = None) -> Image.Image:
    """Decode ``path`` to an RGB image, or raise ``BadImageError`` naming the file.

    ``draft_size``: for JPEGs, let libjpeg decode at 1/2, 1/4 or 1/8 scale while the
    shorter side stays >= ``draft_size`` (several times faster for large photos;
    pixels differ slightly from a full decode followed by the same resize).
    """
    name = display_path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # counted below, not printed
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as im:
                _check_shape(name, *im.size)  # from the header: nothing decoded yet
                if draft_size and im.format == "JPEG":
                    short = min(im.size)
                    if short > draft_size:
                        w, h = im.size
                        im.draft("RGB", (w * draft_size // short, h * draft_size // short))
                im.seek(0)  # animated: first frame
                out = ImageOps.exif_transpose(im)  # loads the pixels; a copy when no tag
                out.load()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImageError(
            f"{name}: refused, more than Pillow's decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels"
        ) from None
    except FileNotFoundError:
        raise BadImageError(f"{name}: no such file") from None
    except (PermissionError, IsADirectoryError) as e:
        raise BadImageError(f"{name}: cannot read ({e.strerror})") from None
    except Image.UnidentifiedImageError:
        raise BadImageError(f"{name}: {_what_it_is(path)}") from None
    except MemoryError:
        raise BadImageError(f"{name}: out of memory while decoding") from None
    except Exception as e:  # decoders raise OSError, ValueError, SyntaxError, EOFError, ...
        raise BadImageError(f"{name}: corrupt or truncated image ({type(e).__name__}: {e})") from e
    if caught:
        _note_warnings(name, caught)
    try:
        return to_rgb(out)
    except ValueError as e:
        raise BadImageError(f"{name}: image mode {out.mode} cannot be made RGB ({e})") from None


def decoder_warnings() -> dict[str, int]:
    """{file: number of warnings its decoding gave} in this process (each file once)."""
    return dict(_warned)


def _check_shape(name: str, w: int, h: int) -> None:
    if w < 1 or h < 1:
        raise BadImageError(f"{name}: {w}x{h} pixels, an empty image")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise BadImageError(
            f"{name}: refused, {w}x{h} pixels: one side is more than {MAX_ASPECT:,} times the other"
        )


# What a file that no allowed format opens most likely is, from its first bytes.
_SIGNATURES = (
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
)


def _what_it_is(path: str | os.PathLike) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        head = b""
    if not head:
        return "empty file (0 bytes)" if _size_or_none(path) == 0 else "not an image"
    kind = next((k for sig, k in _SIGNATURES if head.startswith(sig)), None)
    what = f"a {kind} file, " if kind else ""
    return f"not an image this project reads ({what}it reads {_FORMAT_NAMES})"


def _note_warnings(name: str, caught: list[warnings.WarningMessage]) -> None:
    """Count the decoder's warnings for ``name``; log the first files' in one line each."""
    if name in _warned:
        return
    _warned[name] = len(caught)
    if len(_warned) > _SHOWN_WARNED_FILES:
        return
    first = " ".join(str(caught[0].message).split())[:160]
    log.warning(
        "%s: %d warning(s) from the image decoder, ignored (first: %s)", name, len(caught), first
    )
    if len(_warned) == _SHOWN_WARNED_FILES:
        log.warning("further images with decoder warnings are counted, not shown")


def _size_or_none(path: str | os.PathLike) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def resize_center_crop(img: Image.Image, size: int = 256) -> Image.Image:
    """§2: "rescaled the image such that the shorter side was of length 256, and then
    cropped out the central 256x256 patch" -> (size, size) RGB.

    Done in one resample from the central square of the source (``box=``), so a
    1x10000 strip never becomes a 256x2,560,000 intermediate. Bilinear with
    Pillow's antialiasing (its filter support widens when shrinking).
    """
    img = to_rgb(img)
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) / 2, (h - s) / 2
    if (w, h) == (size, size):
        return img
    return img.resize((size, size), Image.BILINEAR, box=(left, top, left + s, top + s))


RESIZE_MODES = ("square", "warp", "shorter")


def resized_uint8(img: Any, size: int = 256, mode: str = "square") -> Tensor:
    """PIL image (any mode) or uint8 tensor (3, H, W) -> uint8 (3, H', W') resized as
    ``mode`` says (module docstring); a tensor that is already size x size is kept."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {mode!r}")
    if isinstance(img, Tensor):
        if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
            raise TypeError(
                f"expected a uint8 tensor (3, H, W), got {img.dtype} {tuple(img.shape)}"
            )
        if img.shape[1:] == (size, size):
            return img
        img = Image.fromarray(img.permute(1, 2, 0).numpy())
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image or a uint8 tensor, got {type(img).__name__}")
    img = to_rgb(img)
    if mode == "square":
        img = resize_center_crop(img, size)
    elif mode == "warp":
        img = img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)
    else:  # torchvision's Resize(size) on a PIL image, so the pixels are its own
        from torchvision.transforms import v2  # imported here: 1 s, torch._dynamo with it

        img = v2.functional.resize(img, [size], interpolation=v2.InterpolationMode.BILINEAR)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()


def square_uint8(img: Any, size: int = 256) -> Tensor:
    """PIL image (any mode) or uint8 tensor (3, H, W) -> uint8 (3, size, size) (§2 rescale)."""
    return resized_uint8(img, size, "square")
