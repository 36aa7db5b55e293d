"""load_image on awkward files: every mode becomes RGB, bad files raise BadImageError naming
the file, decompression bombs are refused, EXIF rotation is applied."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet.data import BadImageError, load_image, resize_center_crop
from alexnet.errors import UserError


def rgb_of(path: Path) -> np.ndarray:
    img = load_image(path)
    assert img.mode == "RGB"
    return np.asarray(img)


@pytest.mark.parametrize("mode", ["1", "L", "P", "CMYK", "YCbCr", "RGB", "I", "F"])
def test_modes_become_rgb(tmp_path, mode):
    img = Image.new("RGB", (7, 5), (200, 100, 50)).convert(mode)
    path = tmp_path / "x.tif"  # TIFF stores every one of these modes
    img.save(path)
    a = rgb_of(path)
    assert a.shape == (5, 7, 3)


def test_greyscale_value_is_kept(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "g.png")
    assert (rgb_of(tmp_path / "g.png") == 77).all()


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red ink-wise
    a = rgb_of(tmp_path / "c.jpg").astype(int)
    assert a[..., 0].mean() > 200 and a[..., 1].mean() < 60 and a[..., 2].mean() < 60


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    a16 = np.array([[0, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "d.png")  # mode I;16
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    assert rgb_of(tmp_path / "d.png")[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(tmp_path, mode):
    img = Image.new("RGBA", (2, 1), (0, 0, 0, 255))
    img.putpixel((1, 0), (0, 0, 0, 0))  # fully transparent black
    img.convert(mode).save(tmp_path / "a.png")
    a = rgb_of(tmp_path / "a.png")
    assert a[0, 0].tolist() == [0, 0, 0] and a[0, 1].tolist() == [255, 255, 255]


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 1  # index 1 (green) is transparent
    img.save(tmp_path / "p.png", transparency=1)
    a = rgb_of(tmp_path / "p.png")
    assert a[0, 0].tolist() == [255, 0, 0] and a[0, 1].tolist() == [255, 255, 255]


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 10))  # white block at the top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    a = rgb_of(tmp_path / "r.jpg")
    assert a.shape == (40, 20, 3)  # portrait after rotation
    assert a[:10, -10:].mean() > 200 and a[:10, :10].mean() < 50  # block now top-right


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    a = rgb_of(tmp_path / "a.gif").astype(int)
    assert a[..., 0].mean() > 200 and a[..., 2].mean() < 50


def test_png_data_named_jpeg(tmp_path):
    Image.new("RGB", (5, 5), (1, 2, 3)).save(tmp_path / "x.JPEG", format="PNG")
    assert rgb_of(tmp_path / "x.JPEG")[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("size", [(1, 1), (1, 100), (100, 1), (30, 3000)])
def test_extreme_aspect_ratios(tmp_path, size):
    Image.new("RGB", size, (9, 8, 7)).save(tmp_path / "t.png")
    img = resize_center_crop(load_image(tmp_path / "t.png"), 256)
    assert img.size == (256, 256) and np.asarray(img)[128, 128].tolist() == [9, 8, 7]


@pytest.mark.parametrize("size", [(1, 101), (101, 1), (1, 10000), (29, 3000)])
def test_aspect_ratio_beyond_the_limit_is_refused(tmp_path, size):
    Image.new("RGB", size, (9, 8, 7)).save(tmp_path / "t.png")
    w, h = size
    with pytest.raises(BadImageError, match=rf"t.png: refused, {w}x{h} pixels: one side is more"):
        load_image(tmp_path / "t.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty.jpg: empty file \(0 bytes\)"):
        load_image(tmp_path / "empty.jpg")


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image\n")
    with pytest.raises(BadImageError, match="notes.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")


def test_jpeg_cut_in_half(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "f.jpg")
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match="half.jpg: corrupt or truncated"):
        load_image(tmp_path / "half.jpg")


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header declares w x h pixels (8-bit RGB) and whose data is one empty row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * 16))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused(tmp_path):
    _png_header_only(tmp_path / "bomb.png", 20000, 20000)  # 400 M pixels, 1.2 GB decoded
    with pytest.raises(BadImageError, match=r"bomb.png: refused, more than .*decompression-bomb"):
        load_image(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's limit is kept


def test_non_utf8_file_name(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes, not valid UTF-8
    Image.new("RGB", (3, 3), (4, 5, 6)).save(os.path.join(tmp_path, name))
    assert rgb_of(Path(tmp_path, name))[0, 0].tolist() == [4, 5, 6]
    bad = os.fsdecode(b"bad\xff.jpg")
    Path(tmp_path, bad).write_bytes(b"junk")
    with pytest.raises(BadImageError, match=r"bad\\xff.jpg: not an image") as e:
        load_image(Path(tmp_path, bad))
    str(e.value).encode("utf-8")  # printable


def test_missing_file_and_error_types(tmp_path):
    with pytest.raises(BadImageError, match="nope.png: no such file") as e:
        load_image(tmp_path / "nope.png")
    assert isinstance(e.value, UserError)
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(BadImageError, match="dir.jpg: cannot read"):
        load_image(tmp_path / "dir.jpg")
    assert type(e.value)(str(e.value)).args[0] == str(e.value)  # DataLoader re-raise form
