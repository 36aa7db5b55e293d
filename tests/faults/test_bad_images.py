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

BAD = {"empty.jpg", "text.jpg", "half.jpg", "bomb.png"}  # unreadable: named or skipped


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
    Image.fromarray(noise(1, 10000)).save(d / "wide.png")
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
    assert "skipped" in out and "4" in out


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
