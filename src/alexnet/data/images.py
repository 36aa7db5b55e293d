"""Reading one image file into an RGB PIL image, and the paper's 256x256 rescale (§2).

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
* more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (89.5 M by default, a
  decompression-bomb guard we keep): ``BadImageError``, the file is never decoded.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from alexnet.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
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
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if draft_size and im.format == "JPEG":
                    short = min(im.size)
                    if short > draft_size:
                        w, h = im.size
                        im.draft("RGB", (w * draft_size // short, h * draft_size // short))
                im.seek(0)  # animated: first frame
                out = ImageOps.exif_transpose(im)  # loads the pixels; a copy when no tag
                out.load()
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
        size = _size_or_none(path)
        what = "empty file (0 bytes)" if size == 0 else "not an image Pillow can read"
        raise BadImageError(f"{name}: {what}") from None
    except MemoryError:
        raise BadImageError(f"{name}: out of memory while decoding") from None
    except Exception as e:  # decoders raise OSError, ValueError, SyntaxError, EOFError, ...
        raise BadImageError(f"{name}: corrupt or truncated image ({type(e).__name__}: {e})") from e
    try:
        return to_rgb(out)
    except ValueError as e:
        raise BadImageError(f"{name}: image mode {out.mode} cannot be made RGB ({e})") from None


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
