"""A folder of hostile images through prepare, train, evaluate and predict."""

from __future__ import annotations

import json
import os
import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

# A 58-byte PostScript program: Pillow's EPS plugin would hand it to Ghostscript (`gs`).
POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"

# unreadable: named or skipped (strip.png: one side more than 100 times the other)
BAD = {"empty.jpg", "text.jpg", "half.jpg", "bomb.png", "strip.png", "postscript.jpg"}


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def write_zoo(d: Path, rng: np.random.Generator) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    noise = lambda h, w, c=3: rng.integers(0, 256, (h, w, c), dtype=np.uint8)  # noqa: E731
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    buf = BytesIO()
    Image.fromarray(noise(64, 64)).save(buf, "JPEG")
    (d / "half.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "bomb.png").write_bytes(_png_header_only(20000, 20000))
    Image.fromarray(noise(40, 40)).save(d / "png_named.JPEG", "PNG")
    Image.fromarray(noise(40, 40, 4), "RGBA").convert("CMYK").save(d / "cmyk.jpg", "JPEG")
    Image.fromarray(noise(30, 30, 2), "LA").save(d / "la.png")
    p = Image.fromarray(noise(30, 30)).convert("P")
    p.info["transparency"] = 0
    p.save(d / "p_transparent.png")
    Image.fromarray(noise(30, 30, 4), "RGBA").save(d / "rgba.png")
    Image.fromarray((rng.integers(0, 65535, (30, 30))).astype(np.uint16)).save(d / "i16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    Image.fromarray(noise(20, 40)).save(d / "exif.jpg", exif=exif)
    frames = [Image.fromarray(noise(24, 24)) for _ in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(noise(1, 1)).save(d / "one.png")
    Image.fromarray(noise(1, 100)).save(d / "wide.png")
    Image.fromarray(noise(1, 10000)).save(d / "strip.png")
    (d / "postscript.jpg").write_bytes(POSTSCRIPT)
    with open(os.path.join(os.fsencode(d), b"caf\xe9-latin1.png"), "wb") as f:
        Image.fromarray(noise(16, 16)).save(f, "PNG")
    (d / "notes.txt").write_text("ignored")
    return sorted(d.iterdir())


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("zoo") / "data"
    for split, n in (("train", 4), ("val", 2)):
        for cls, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (50, 40), colour).save(d / f"good{i}.png")
        write_zoo(root / split / "red" / "zoo", rng)
        (root / split / "blue" / "loop").symlink_to(root / split / "blue")  # a symlink loop
    return root


def test_prepare_names_a_bad_file_then_skips_with_a_count(zoo, tmp_path, run_cli, one_line_error):
    err = one_line_error(run_cli("prepare", str(zoo), str(tmp_path / "store")))
    assert any(name in err for name in BAD)
    assert not (tmp_path / "store").exists()  # nothing that looks like a store
    r = run_cli("prepare", str(zoo), str(tmp_path / "store"), "--skip-bad")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "skipped" in out and str(len(BAD)) in out


def test_train_and_evaluate_with_skip_bad(zoo, tmp_path, run_cli, one_line_error, small_config):
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(small_config),
        "--data",
        str(zoo),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--workers",
        "0",
    ]
    err = one_line_error(run_cli(*args))
    assert any(name in err for name in BAD)
    r = run_cli(*args, "--skip-bad", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert "skipping bad image" in r.stderr
    ck = out / "checkpoints" / "last.pt"
    r = run_cli("evaluate", str(ck), "--data", str(zoo), "--json", "--skip-bad", "--workers", "0")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert 0 <= res["top1_error"] <= 1


def test_predict_answers_every_readable_file(zoo, tmp_path, run_cli, small_config):
    out = tmp_path / "run"
    r = run_cli(
        "train",
        "--config",
        str(small_config),
        "--data",
        str(zoo),
        "--out",
        str(out),
        "--max-steps",
        "1",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--skip-bad",
        "--eval-batches",
        "1",
    )
    assert r.returncode == 0, r.stderr
    files = [p for p in sorted((zoo / "val" / "red" / "zoo").iterdir()) if p.suffix != ".txt"]
    r = run_cli("predict", str(out / "checkpoints" / "last.pt"), *map(str, files), "--json")
    assert r.returncode == 1  # some files are unreadable
    assert "Traceback" not in r.stderr
    results = json.loads(r.stdout)
    assert len(results) == len(files)
    for f, res in zip(files, results, strict=True):
        if f.name in BAD:
            assert "error" in res, f.name
        else:
            assert len(res["predictions"]) == 2, (f.name, res)


def fake_gs_path(tmp_path: Path) -> tuple[dict, Path]:
    """(env with a `gs` first on PATH that writes a marker file when run, the marker)."""
    marker = tmp_path / "gs-ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\nexit 1\n')
    (bin_dir / "gs").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}, marker


def test_postscript_named_jpg_never_starts_ghostscript(tmp_path, run_cli, one_line_error):
    from alexnet.engine.checkpoint import save_checkpoint
    from alexnet.models import create_model

    env, marker = fake_gs_path(tmp_path)
    root = tmp_path / "data"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            Image.new("RGB", (20, 20), (9, 9, 9)).save(root / split / cls / "ok.png")
    (root / "train" / "a" / "x.jpg").write_bytes(POSTSCRIPT)
    err = one_line_error(run_cli("prepare", str(root), str(tmp_path / "store"), env=env))
    assert "x.jpg: not an image this project reads (a PostScript file" in err
    r = run_cli("prepare", str(root), str(tmp_path / "store"), "--skip-bad", env=env)
    assert r.returncode == 0, r.stderr
    kw = {"width": 0.125}
    model = create_model("alexnet", num_classes=2, **kw)
    ck = tmp_path / "ck.pt"
    save_checkpoint(
        {
            "model": model.state_dict(),
            "model_name": "alexnet",
            "model_kwargs": kw,
            "classes": ["a", "b"],
        },
        ck,
    )
    x, ok = root / "train" / "a" / "x.jpg", root / "val" / "a" / "ok.png"
    r = run_cli("predict", str(ck), str(x), str(ok), "--json", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    bad, good = json.loads(r.stdout)
    assert "not an image this project reads" in bad["error"] and len(good["predictions"]) == 2
    assert not marker.exists()


def test_thousands_of_exif_warnings_are_one_line_in_prepare(tmp_path, run_cli):
    """4,000 EXIF tags each claiming more data than the block holds: Pillow warns for 3,952
    of them (7,904 lines on stderr before); prepare now says it in one line."""
    root = tmp_path / "data"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            Image.new("RGB", (20, 20), (9, 9, 9)).save(root / split / cls / "ok.png")
    n = 4000
    ifd = b"".join(struct.pack("<HHII", 1000 + i, 2, 1000, 8) for i in range(n))
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n) + ifd + b"\0\0\0\0"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(
        root / "train" / "a" / "exif.jpg", "JPEG", exif=b"Exif\x00\x00" + tiff
    )
    r = run_cli("prepare", str(root), str(tmp_path / "store"), "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("exif.jpg: 3952 warning(s) from the image decoder, ignored") == 1
    assert "Tag data larger than file" not in r.stderr.replace("(first: Tag data larger", "")
    assert len(r.stderr.splitlines()) < 20, r.stderr
