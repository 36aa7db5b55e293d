"""The formats load_image opens, the shapes it refuses before decoding, and decoder warnings."""

from __future__ import annotations

import io
import logging
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from alexnet.data import images
from alexnet.data.images import FORMATS, BadImageError, decoder_warnings, load_image

# A 58-byte PostScript program: Pillow's EPS plugin opens it and loads it through `gs`.
POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
# A DOS EPS binary header (magic, PostScript offset and length, no WMF/TIFF, no checksum).
EPS_BINARY_HEADER = (
    b"\xc5\xd0\xd3\xc6" + struct.pack("<6I", 30, len(POSTSCRIPT), 0, 0, 0, 0) + b"\xff\xff"
)


def fake_gs(bin_dir: Path, marker: Path) -> Path:
    """A `gs` on PATH that records that it ran (writes ``marker``) and fails."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    gs = bin_dir / "gs"
    gs.write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\nexit 1\n')
    gs.chmod(0o755)
    return bin_dir


def tall_png(path: Path, rows: int = 80_000_000) -> Path:
    """A real 1 x ``rows`` greyscale PNG (155 KB for 80 M rows), compressed as it is made."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    z = zlib.compressobj(9)
    block = b"\x00\x80" * 1_000_000  # per row: filter byte 0, one grey pixel
    idat = b"".join(z.compress(block) for _ in range(rows // 1_000_000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", 1, rows, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def bogus_exif_jpeg(path: Path, entries: int = 4000) -> Path:
    """An 8x8 JPEG whose EXIF block has ``entries`` tags each claiming 1000 bytes of data:
    Pillow warns once per tag beyond the block's size ("Tag data larger than file")."""
    ifd = b"".join(struct.pack("<HHII", 1000 + i, 2, 1000, 8) for i in range(entries))
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", entries) + ifd + b"\0\0\0\0"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "JPEG", exif=b"Exif\x00\x00" + tiff)
    path.write_bytes(buf.getvalue())
    return path


# Pillow format -> (extension, save options) for each format the project reads.
READ = {
    "JPEG": (".jpg", {}),
    "PNG": (".png", {}),
    "BMP": (".bmp", {}),
    "PPM": (".ppm", {}),
    "TIFF": (".tif", {}),
    "WEBP": (".webp", {"lossless": True}),
    "GIF": (".gif", {}),
}


def test_the_formats_read_are_the_listed_ones():
    assert set(FORMATS) == set(READ)


@pytest.mark.parametrize("fmt", sorted(READ))
@pytest.mark.parametrize("named", ["own", "jpg"])
def test_each_listed_format_is_read_whatever_its_name(tmp_path, fmt, named):
    ext, options = READ[fmt]
    path = tmp_path / f"x{ext if named == 'own' else '.jpg'}"
    Image.new("RGB", (6, 4), (200, 100, 50)).save(path, fmt, **options)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (6, 4)
    assert np.abs(np.asarray(img, dtype=int)[2, 3] - [200, 100, 50]).max() <= 8  # JPEG's loss


def test_pgm_is_read_as_grey(tmp_path):
    Image.new("L", (5, 5), 77).save(tmp_path / "g.pgm")
    assert np.asarray(load_image(tmp_path / "g.pgm"))[0, 0].tolist() == [77, 77, 77]


@pytest.mark.parametrize("fmt", ["PDF", "TGA", "PCX", "ICO", "SGI", "QOI"])
def test_formats_pillow_has_but_the_project_does_not_read(tmp_path, fmt):
    Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / "x.jpg", fmt)
    with pytest.raises(BadImageError, match="x.jpg: not an image this project reads"):
        load_image(tmp_path / "x.jpg")


@pytest.mark.parametrize(
    "data, kind",
    [
        (POSTSCRIPT, "PostScript"),
        (EPS_BINARY_HEADER + POSTSCRIPT, "EPS"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    ],
)
def test_postscript_eps_and_pdf_never_start_ghostscript(tmp_path, monkeypatch, data, kind):
    marker = tmp_path / "gs-ran"
    bin_dir = fake_gs(tmp_path / "bin", marker)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # Pillow looks for gs again
    (tmp_path / "x.jpg").write_bytes(data)
    with pytest.raises(BadImageError, match=f"x.jpg: not an image this project reads \\(a {kind}"):
        load_image(tmp_path / "x.jpg")
    assert not marker.exists()


@pytest.mark.parametrize("size", [(1, 101), (5000, 49)])
def test_a_shape_beyond_the_aspect_limit_is_refused_from_the_header(tmp_path, size):
    Image.new("L", size).save(tmp_path / "s.png")
    with pytest.raises(BadImageError, match="one side is more than 100 times the other"):
        load_image(tmp_path / "s.png")


def test_a_one_by_80_million_png_is_refused_before_its_pixels_are_allocated(tmp_path):
    """Under Pillow's pixel limit, but 2.3 GB to load (8 bytes a row): refused from the
    header; the process's peak memory grows by less than 50 MB."""
    png = tall_png(tmp_path / "tall.png")
    assert png.stat().st_size < 200_000
    script = textwrap.dedent(f"""
        import resource
        from alexnet.data.images import BadImageError, load_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_image({str(png)!r})
        except BadImageError as e:
            print(e)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grew // 1024)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    message, grew_mb = r.stdout.strip().splitlines()
    assert message.endswith(
        "tall.png: refused, 1x80000000 pixels: one side is more than 100 times the other"
    )
    assert int(grew_mb) < 50


def test_thousands_of_exif_warnings_are_counted_not_printed(tmp_path):
    """4,000 bogus EXIF tags printed 7,904 lines; now one, and the count is kept."""
    path = bogus_exif_jpeg(tmp_path / "exif.jpg")
    script = textwrap.dedent(f"""
        import logging
        logging.basicConfig()
        from alexnet.data.images import decoder_warnings, load_image
        for _ in range(3):  # e.g. three epochs
            img = load_image({str(path)!r})
        print(img.size, decoder_warnings())
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "exif.jpg: 3952 warning(s) from the image decoder, ignored" in r.stderr
    assert r.stdout.strip() == f"(8, 8) {{{str(path)!r}: 3952}}"


def test_decoder_warnings_are_shown_for_the_first_files_only(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(images, "_warned", {})
    caplog.set_level(logging.WARNING, logger=images.__name__)
    for i in range(8):
        for _ in range(2):
            load_image(bogus_exif_jpeg(tmp_path / f"e{i}.jpg", entries=60))
    counts = decoder_warnings()
    assert counts == {str(tmp_path / f"e{i}.jpg"): 60 for i in range(8)}
    lines = [r.getMessage() for r in caplog.records if r.name == images.__name__]
    assert len(lines) == 6  # five files, then "counted, not shown"
    assert lines[0].endswith(
        "e0.jpg: 60 warning(s) from the image decoder, ignored (first: "
        "Tag data larger than file. Skipping tag 1000)"
    )
