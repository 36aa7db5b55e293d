"""Tar archives as --data: a cache keyed by content, one extraction per path, limits checked
before anything is written, killed and failed extractions leave nothing."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet.data import archives
from alexnet.data.archives import extract_archive
from alexnet.errors import UserError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "extracted"


def tree_tar(path: Path, colour=(200, 10, 10), n: int = 2) -> Path:
    """``path``: a tar(.gz) of mini/{train,val}/{a,b}/<n> PNGs of one colour."""
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for split in ("train", "val"):
            for cls in ("a", "b"):
                for i in range(n):
                    buf = io.BytesIO()
                    Image.new("RGB", (8, 8), colour).save(buf, "PNG")
                    info = tarfile.TarInfo(f"mini/{split}/{cls}/{i}.png")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def entries(cache: Path) -> list[str]:
    """What the extraction cache holds, lock files left out."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


def pixel(folder: Path) -> list[int]:
    return np.asarray(Image.open(folder / "mini" / "train" / "a" / "0.png"))[0, 0].tolist()


def test_touch_reuses_the_extraction(cache, tmp_path):
    archive = tree_tar(tmp_path / "mini.tar.gz")
    first = extract_archive(archive)
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touch
    archives._digests.clear()  # as a new process would
    assert extract_archive(archive) == first
    assert entries(cache) == [first.name]


def test_a_swapped_archive_of_the_same_size_and_time_is_extracted_again(cache, tmp_path):
    archive = tree_tar(tmp_path / "mini.tar")
    first = extract_archive(archive)
    st = archive.stat()
    other = tree_tar(tmp_path / "other.tar", colour=(10, 200, 10))
    assert other.stat().st_size == st.st_size
    os.replace(other, archive)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time
    second = extract_archive(archive)
    assert second != first and pixel(second) == [10, 200, 10]
    assert entries(cache) == [second.name]  # the stale one was replaced, not kept beside


def test_two_paths_of_one_archive_each_keep_their_extraction(cache, tmp_path):
    (tmp_path / "a").mkdir()
    a = tree_tar(tmp_path / "a" / "mini.tar", n=1)
    b = tmp_path / "b.tar"
    b.write_bytes(a.read_bytes())
    assert extract_archive(a) != extract_archive(b)
    assert len(entries(cache)) == 2


def test_a_killed_extraction_is_cleaned_up_by_the_next(cache, tmp_path):
    archive = tree_tar(tmp_path / "mini.tar.gz")
    killer = textwrap.dedent(f"""
        import os, signal, tarfile
        from alexnet.data.archives import extract_archive
        real = tarfile.TarFile.extractall
        def extract_one_then_die(self, path, members=None, **kw):
            real(self, path, members=self.getmembers()[:3], **kw)
            os.kill(os.getpid(), signal.SIGKILL)
        tarfile.TarFile.extractall = extract_one_then_die
        extract_archive({str(archive)!r})
    """)
    env = dict(os.environ, ALEXNET_CACHE_DIR=str(cache.parent))
    r = subprocess.run([sys.executable, "-c", killer], env=env, capture_output=True, timeout=300)
    assert r.returncode == -9, r.stderr
    (left,) = entries(cache)
    assert ".tmp-" in left and any((cache / left).rglob("*"))  # the killed run's partial copy
    out = extract_archive(archive)
    assert entries(cache) == [out.name] and pixel(out) == [200, 10, 10]


def test_a_truncated_tar_gz_is_one_line_and_leaves_nothing(cache, tmp_path):
    archive = tree_tar(tmp_path / "mini.tar.gz", n=20)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"mini.tar.gz: truncated archive \(EOFError"):
        extract_archive(archive)
    assert entries(cache) == []


def test_a_file_that_is_not_a_tar_is_one_line(cache, tmp_path):
    (tmp_path / "x.tar").write_text("hello\n")
    with pytest.raises(UserError, match=r"x.tar: corrupt archive"):
        extract_archive(tmp_path / "x.tar")
    assert entries(cache) == []


def test_too_many_members_or_bytes_are_refused_before_writing(cache, tmp_path, monkeypatch):
    archive = tree_tar(tmp_path / "mini.tar", n=3)  # 12 files, 4 directories' worth of paths
    monkeypatch.setattr(archives, "MAX_MEMBERS", 11)
    with pytest.raises(UserError, match="mini.tar: refused, more than 11 members"):
        extract_archive(archive)
    monkeypatch.setattr(archives, "MAX_MEMBERS", 100)
    monkeypatch.setattr(archives, "MAX_BYTES", 500)
    with pytest.raises(UserError, match="mini.tar: refused, its members hold more than 500 bytes"):
        extract_archive(archive)
    assert entries(cache) == []


def bomb(path: Path, size: int = 128 << 20) -> Path:
    """A .tar.gz of one ``size``-byte member of zeros (about size/1000 bytes), streamed."""
    info = tarfile.TarInfo("mini/train/a/0.bmp")
    info.size = size
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT))
        zeros = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(zeros)
        f.write(bytes(1024))  # the end-of-archive blocks
    return path


def test_a_compression_bomb_is_refused_before_writing(cache, tmp_path):
    archive = bomb(tmp_path / "bomb.tar.gz")
    assert archive.stat().st_size < 200_000
    with pytest.raises(UserError, match=r"bomb.tar.gz: refused, .* that unpack to 128.0 MiB"):
        extract_archive(archive)
    assert entries(cache) == []


def test_members_bigger_than_the_free_space_are_refused(cache, tmp_path, monkeypatch):
    archive = tree_tar(tmp_path / "mini.tar")
    monkeypatch.setattr(
        archives.shutil, "disk_usage", lambda p: archives.shutil._ntuple_diskusage(10**9, 0, 10_000)
    )
    with pytest.raises(UserError, match=r"mini.tar: needs .* to extract into .*, 9.8 KiB free"):
        extract_archive(archive)
    assert entries(cache) == []


@pytest.mark.parametrize(
    "member, link",
    [
        ("../escape.png", None),
        ("mini/train/a/link.png", "/etc/passwd"),
        ("mini/train/a/link.png", "../../../../outside.png"),
    ],
)
def test_unsafe_members_are_refused_before_writing(cache, tmp_path, member, link):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(member)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        else:
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(UserError, match="evil.tar: refused, unsafe member"):
        extract_archive(archive)
    assert entries(cache) == [] and not (tmp_path / "escape.png").exists()


def test_an_absolute_member_lands_inside_the_extraction(cache, tmp_path):
    archive = tmp_path / "abs.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("/tmp/abs-member.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    out = extract_archive(archive)
    assert (out / "tmp" / "abs-member.txt").read_text() == "hi"
