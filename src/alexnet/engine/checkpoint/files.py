"""Checkpoint files: written atomically, read with ``weights_only`` (no pickled code runs).

Writes go to ``<name>.tmp-<pid>`` in the same directory, are fsynced and then
renamed over the target, so a crash or SIGKILL mid-write leaves the previous
checkpoint intact and no partial file under the real name. A file that torch.save did
not write is refused by its first bytes; what is read is checked and brought to this
version's format by ``schema.upgrade_state``. The generators' states (``rng``) are
saved and restored here too.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alexnet.errors import UserError

from .schema import upgrade_state

REFUSED_SUFFIXES = {
    ".pt2": "torch.export program",
    ".ts": "TorchScript file",
    ".torchscript": "TorchScript file",
}


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        # torch.save's zip writer turns a full disk into a RuntimeError raised while
        # handling the OSError, so look down the exception chain for the errno.
        tmp.unlink(missing_ok=True)
        os_err = _find_os_error(e)
        if os_err is not None and os_err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"disk full while writing checkpoint {path}; the previous checkpoint "
                "(if any) is untouched"
            ) from None
        if os_err is None and isinstance(e, RuntimeError):
            raise
        reason = (os_err.strerror if os_err is not None else None) or str(e)
        raise UserError(f"could not write checkpoint {path}: {reason}") from None
    return path


def _find_os_error(e: BaseException | None) -> OSError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict:
    """Read a checkpoint with ``weights_only=True``, upgraded to this version's format;
    every failure is a one-line UserError. ``mmap``: tensors are mapped from the file
    and read only when used (a cheap look at a 0.5 GB checkpoint)."""
    path = Path(path)
    if path.suffix in REFUSED_SUFFIXES:
        raise UserError(
            f"{path}: refusing to load a {REFUSED_SUFFIXES[path.suffix]}: such files run code; "
            "alexnet loads only its own checkpoints (.pt) and .safetensors weights"
        )
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a directory, not a file")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes)")
    _check_magic(path)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint {path} was refused: it holds Python objects that safe loading "
            f"(weights_only) does not allow, which could run code ({first[:160]})"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch's readers raise KeyError, IndexError, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({msg[:160]})") from None
    if not isinstance(state, dict) or "model" not in state or "model_name" not in state:
        raise UserError(
            f"{path} is not an alexnet checkpoint (no 'model'/'model_name' entries); for "
            "torchvision's weights file use `alexnet import-torchvision`, for Caffe's "
            "`alexnet import-caffe`"
        )
    return upgrade_state(state, str(path))


_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip; the legacy format's pickle


def _check_magic(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(_MAGIC):
        raise UserError(
            f"{path} is not a checkpoint: torch.save did not write it (it starts with {head!r})"
        )


# ---- random number generator states (all as weights_only-safe values) ----


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states as weights_only-loadable values."""
    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(gauss),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
