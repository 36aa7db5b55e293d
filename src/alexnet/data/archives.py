"""A tar archive of an ImageFolder tree as ``--data``: checked, then extracted once into the cache.

``extract_archive(path)`` -> ``$ALEXNET_CACHE_DIR/extracted/<stem>-<path key>-<content key>``:

* the content key is the SHA-256 of the archive's bytes (read in 1 MiB blocks, once per
  process): ``touch`` reuses the extraction; another archive of the same size and time
  gets its own. When the archive at a path changes, the older extraction of that path
  is removed once the new one is complete, so there is one per path.
* Before anything is written the members are listed, and the archive is refused in one
  line naming it when a member is unsafe (tarfile's ``data`` filter: no path outside the
  folder, no link pointing outside it, no device; leading ``/`` stripped), when it has
  more than ``MAX_MEMBERS`` members, when their sizes add up to more than ``MAX_BYTES``,
  or to more than ``MAX_RATIO`` times the archive's own size once above ``RATIO_FLOOR``
  (a compression bomb: images barely compress, a tar.gz of JPEGs is about 1:1), or when
  they would not fit the free space of the cache's file system (each size rounded up to
  its blocks, one more block per member).
* A truncated or corrupt archive (a cut ``.tar.gz`` raised ``EOFError``) is one line
  naming it; so is a full disk during extraction, naming the cache folder.
* Extraction goes into ``<name>.tmp-XXXX``, renamed when complete and removed on any
  failure. One process at a time extracts a given path (an ``flock`` on
  ``.<stem>-<path key>.lock``; a second one waits, then uses the first one's result), and
  the temporary folders left by killed extractions of it are removed by the next.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from alexnet.errors import UserError

from ._paths import cache_dir
from .images import display_path

__all__ = ["MAX_BYTES", "MAX_MEMBERS", "MAX_RATIO", "RATIO_FLOOR", "extract_archive"]

log = logging.getLogger(__name__)

MAX_MEMBERS = 2_000_000  # ImageNet's 1.33 M images as an ImageFolder tree fit
MAX_BYTES = 1 << 40  # 1 TiB of member data
MAX_RATIO = 200  # member bytes per archive byte...
RATIO_FLOOR = 64 << 20  # ...checked once the members exceed 64 MiB
_BLOCK = 1 << 20
_digests: dict[tuple, str] = {}  # (path, size, mtime, ctime, inode, device) -> SHA-256


def extract_archive(archive: str | os.PathLike) -> Path:
    """Extract a tar archive once into the cache (checked, atomically); -> its folder."""
    archive = Path(archive).resolve()
    name = display_path(archive)
    digest = _content_digest(archive, name)
    stem = archive.name.split(".")[0]
    prefix = f"{stem}-{hashlib.sha256(os.fsencode(archive)).hexdigest()[:8]}"
    root = cache_dir() / "extracted"
    out = root / f"{prefix}-{digest[:16]}"
    if out.is_dir():
        return out
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{display_path(root)}: cannot create ({e.strerror or e})") from None
    with _locked(root / f".{prefix}.lock", name):
        if out.is_dir():  # another process finished it while we waited
            return out
        _remove(root, rf"{re.escape(prefix)}-[0-9a-f]{{16}}\.tmp-.*")  # killed extractions
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=root))
        try:
            log.warning("extracting %s into %s (once)", name, display_path(out))
            _extract(archive, name, tmp)
            os.rename(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename
        # older contents of this path, and the size-and-time-keyed folders of old versions
        _remove(root, rf"{re.escape(prefix)}-[0-9a-f]{{16}}", keep=out.name)
        _remove(root, rf"{re.escape(stem)}-[0-9a-f]{{12}}(\.tmp-.*)?")
    return out


def _content_digest(archive: Path, name: str) -> str:
    try:
        st = archive.stat()
        key = (str(archive), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        if key not in _digests:
            h = hashlib.sha256()
            with open(archive, "rb") as f:
                while block := f.read(_BLOCK):
                    h.update(block)
            _digests[key] = h.hexdigest()
        return _digests[key]
    except OSError as e:
        raise UserError(f"{name}: cannot read ({e.strerror or e})") from None


def _extract(archive: Path, name: str, dest: Path) -> None:
    """Check the members, then extract them into ``dest``; UserError naming the archive."""
    try:
        with tarfile.open(archive) as tar:
            _check_members(tar, archive, name, dest)
            from alexnet.progress import progress

            members = progress(tar.getmembers(), desc=f"extracting {name}", unit="file")
            tar.extractall(dest, members=members, filter="data")
    except UserError:
        raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"{name}: disk full while extracting into {display_path(dest.parent)} "
                f"({e.strerror}); the partial extraction was removed"
            ) from None
        if e.errno is None:  # gzip.BadGzipFile and other decoder errors
            raise UserError(f"{name}: corrupt archive ({e})") from None
        where = f": {display_path(e.filename)}" if e.filename else ""
        raise UserError(f"{name}: cannot extract ({e.strerror}{where})") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
        what = "truncated" if isinstance(e, EOFError) else "corrupt"
        raise UserError(f"{name}: {what} archive ({type(e).__name__}: {e})") from None


def _check_members(tar: tarfile.TarFile, archive: Path, name: str, dest: Path) -> None:
    """Refuse unsafe members, too many, too large in all, or more than the free space."""
    block = os.statvfs(dest).f_frsize if hasattr(os, "statvfs") else 4096
    block = block or 4096
    total = need = 0
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise UserError(f"{name}: refused, more than {MAX_MEMBERS:,} members")
        try:
            tarfile.data_filter(member, str(dest))
        except tarfile.FilterError as e:
            raise UserError(f"{name}: refused, unsafe member ({e})") from None
        if member.isreg():
            total += member.size
            need += -(-member.size // block) * block
        need += block  # its inode, directory entry or link
        if total > MAX_BYTES:
            raise UserError(
                f"{name}: refused, its members hold more than {_size(MAX_BYTES)} (the limit)"
            )
    size = archive.stat().st_size
    if total > RATIO_FLOOR and total > MAX_RATIO * size:
        raise UserError(
            f"{name}: refused, {_size(size)} that unpack to {_size(total)}: more than "
            f"{MAX_RATIO} times its size (a compression bomb?)"
        )
    free = shutil.disk_usage(dest).free
    if need > free:
        raise UserError(
            f"{name}: needs {_size(need)} to extract into {display_path(dest.parent)}, "
            f"{_size(free)} free there (ALEXNET_CACHE_DIR chooses the folder)"
        )


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


def _remove(root: Path, pattern: str, keep: str | None = None) -> None:
    """Delete the entries of ``root`` whose whole name matches ``pattern`` (but ``keep``)."""
    for entry in root.iterdir():
        if entry.name != keep and re.fullmatch(pattern, entry.name):
            log.info("removing %s", display_path(entry))
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _locked(lock_file: Path, name: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_file`` for the block (none where the platform or
    the file system has no locks); waits, saying so, while another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        raise UserError(f"{display_path(lock_file)}: cannot create ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another process is extracting it; waiting", name)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            pass
        yield
    finally:
        os.close(fd)
