"""Tar archives as --data through the CLI: truncated, larger than the disk, filling it."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def tree_tar(path: Path, n: int) -> Path:
    """``path``: a tar(.gz) of mini/{train,val}/{a,b}/<n> 8x8 PNGs."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for split in ("train", "val"):
            for cls in ("a", "b"):
                for i in range(n):
                    info = tarfile.TarInfo(f"mini/{split}/{cls}/{i}.png")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def leftovers(cache: Path) -> list[str]:
    folder = cache / "extracted"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_truncated_tar_gz_as_data_is_one_line(tmp_path, run_cli, one_line_error):
    archive = tree_tar(tmp_path / "mini.tar.gz", n=20)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    cache = tmp_path / "cache"
    r = run_cli(
        "prepare", str(archive), str(tmp_path / "store"), env={"ALEXNET_CACHE_DIR": str(cache)}
    )
    err = one_line_error(r)
    assert r.returncode == 1
    assert f"{archive}: truncated archive (EOFError" in err
    assert leftovers(cache) == [] and not (tmp_path / "store").exists()


def test_archive_larger_than_the_free_space_is_refused_before_writing(
    tmp_path, small_fs, run_cli, one_line_error
):
    cache = small_fs("2m")
    archive = tmp_path / "big.tar"
    rng = np.random.default_rng(0)
    with tarfile.open(archive, "w") as tar:
        for i in range(3):  # 3 MiB of noise: it does not compress, it does not fit
            info = tarfile.TarInfo(f"big/train/a/{i}.png")
            info.size = 1 << 20
            tar.addfile(info, io.BytesIO(rng.bytes(1 << 20)))
    r = run_cli(
        "prepare", str(archive), str(tmp_path / "store"), env={"ALEXNET_CACHE_DIR": str(cache)}
    )
    err = one_line_error(r)
    assert f"{archive}: needs 3.0 MiB to extract into {cache}/extracted, " in err
    assert leftovers(cache) == []


def test_disk_full_during_extraction_is_one_line_and_removes_the_partial_copy(
    tmp_path, small_fs, run_cli, one_line_error
):
    cache = small_fs("8m", inodes=40)  # bytes to spare, but room for fewer files than it holds
    archive = tree_tar(tmp_path / "many.tar", n=30)
    r = run_cli(
        "prepare", str(archive), str(tmp_path / "store"), env={"ALEXNET_CACHE_DIR": str(cache)}
    )
    err = one_line_error(r)
    assert f"{archive}: disk full while extracting into {cache}/extracted" in err
    assert "the partial extraction was removed" in err
    assert leftovers(cache) == []
    st = os.statvfs(cache)
    assert st.f_ffree > 30  # the inodes were given back
