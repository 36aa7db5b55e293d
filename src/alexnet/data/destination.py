"""What ``alexnet prepare SRC DST`` may write over, and what a killed prepare left.

``--force`` replaces only a packed store (its meta.json names the format) or an empty
folder. DST being SRC, a folder inside SRC or one holding it, a file, a symbolic link or
an ordinary folder is refused in one line before anything is written: ``prepare data/x
data/x --force`` used to delete every source image. A prepare writes into
``DST.tmp-PID-XXXX`` (and moves the old store to ``DST.old-PID-XXXX``); the next prepare
into DST, holding DST's lock, deletes those of PIDs that are gone.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from pathlib import Path

from alexnet.errors import UserError
from alexnet.lock import pid_alive

from .images import display_path
from .store import FORMAT, MAX_META_BYTES, META_FILE

__all__ = ["check_destination", "remove_stale"]


def check_destination(src: str | os.PathLike, dst: Path, force: bool) -> None:
    """Refuse, before anything is written, a DST that would destroy what is not a store:
    SRC itself, a folder inside SRC or holding it, a file, an ordinary folder."""
    name, where = display_path(dst), display_path(src)
    s, d = Path(src).resolve(), dst.resolve()
    replaces = "--force replaces only a packed store or an empty folder"
    if d == s:
        raise UserError(f"{name} is SRC itself: give the store another path", exit_code=2)
    if s in d.parents:
        raise UserError(f"{name} is inside SRC {where}: put the store outside it", exit_code=2)
    if d in s.parents:
        raise UserError(f"{name} holds SRC {where}: put the store elsewhere", exit_code=2)
    if not (dst.exists() or dst.is_symlink()):
        return
    if not force:
        raise UserError(f"{name} already exists (--force replaces it)")
    if dst.is_symlink():
        raise UserError(f"{name} is a symbolic link; {replaces}", exit_code=2)
    if not dst.is_dir():
        raise UserError(f"{name} is a file, not a packed store; {replaces}", exit_code=2)
    if not _says_store(dst) and any(dst.iterdir()):
        raise UserError(
            f"{name} is a folder that is not a packed store (its {META_FILE} does not say "
            f"{FORMAT}); {replaces}",
            exit_code=2,
        )


def _says_store(path: Path) -> bool:
    """True when ``path/meta.json`` names the store format (complete or not)."""
    meta = path / META_FILE
    try:
        if not meta.is_file() or meta.stat().st_size > MAX_META_BYTES:
            return False
        data = json.loads(meta.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


_LEFTOVER = re.compile(r"\.(?:tmp|old)-(\d+)-[A-Za-z0-9_]+")


def remove_stale(dst: Path) -> None:
    """Delete ``DST.tmp-PID-*`` and ``DST.old-PID-*`` folders of prepares that died (their
    PID is gone); called under DST's lock, so no live prepare into DST owns them."""
    for p in dst.parent.glob(f"{glob.escape(dst.name)}.*-*-*"):
        m = _LEFTOVER.fullmatch(p.name[len(dst.name) :])
        if m and p.is_dir() and not p.is_symlink() and not pid_alive(int(m[1])):
            shutil.rmtree(p, ignore_errors=True)
