"""safetensors weights with a JSON sidecar: a checkpoint that cannot run code.

``model.safetensors`` holds the state dict, ``model.json`` the rest (format,
model name and options, class names, preprocessing). Loading checks the 8-byte
header length against the file size before safetensors parses anything, and
needs the sidecar; every failure is a one-line UserError.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
from pathlib import Path

from torch import nn

from alexnet.checkpoint import LoadedModel, check_model_fields, model_from_state, upgrade_state
from alexnet.errors import UserError, check_format_version

from ._common import SIDECAR_FORMAT, SIDECAR_VERSION, as_loaded, describe


def sidecar_path(weights: str | os.PathLike) -> Path:
    """``model.safetensors`` -> ``model.json``."""
    return Path(weights).with_suffix(".json")


def export_safetensors(model: LoadedModel | nn.Module, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write the weights to ``out`` (``.safetensors``) and the sidecar ``<name>.json``, each
    through a temporary file and a rename. Returns (weights path, sidecar path)."""
    from safetensors.torch import save_file

    loaded = as_loaded(model)
    out = Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"{out}: the weights file must end in .safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in loaded.model.state_dict().items()}
    side = sidecar_path(out)
    tmp_w, tmp_s = (p.with_name(f"{p.name}.tmp-{os.getpid()}") for p in (out, side))
    try:
        save_file(tensors, str(tmp_w), metadata={"format": SIDECAR_FORMAT})
        tmp_s.write_text(json.dumps(describe(loaded, out.name), indent=2) + "\n")
        shutil.copymode(tmp_s, tmp_w)  # safetensors writes 0600; give it the umask's mode
        os.replace(tmp_w, out)
        os.replace(tmp_s, side)
    except Exception as e:  # SafetensorError carries I/O failures as text
        if isinstance(e, UserError):
            raise
        text = str(e)
        if "No space left" in text or getattr(e, "errno", None) == errno.ENOSPC:
            raise UserError(f"disk full while writing {out}; nothing was written") from None
        if isinstance(e, OSError) or "I/O error" in text:
            raise UserError(f"could not write {out}: {text.splitlines()[0][:200]}") from None
        raise
    finally:
        tmp_w.unlink(missing_ok=True)
        tmp_s.unlink(missing_ok=True)
    return out, side


def _check_header(path: Path) -> None:
    """A safetensors file starts with a little-endian u64 header length N: 8 + N <= size."""
    size = path.stat().st_size
    if size < 8:
        raise UserError(f"{path} is not a safetensors file ({size} bytes, no header)")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    if 8 + n > size:
        raise UserError(
            f"{path}: header length {n} bytes is larger than the file ({size} bytes); "
            "it is truncated or not a safetensors file"
        )


def _read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if not side.is_file():
        raise UserError(
            f"{path}: its sidecar {side.name} is missing (it names the model, classes and "
            "preprocessing); re-create both with `alexnet export CKPT --format safetensors`"
        )
    try:
        meta = json.loads(side.read_bytes())
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise UserError(f"{side} is not valid JSON ({why})") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise UserError(f'{side} is not an alexnet sidecar (no "format": "{SIDECAR_FORMAT}")')
    check_format_version(
        meta.get("format_version"), what="sidecar", source=str(side), newest=SIDECAR_VERSION
    )
    if not isinstance(meta.get("model_name"), str):
        raise UserError(f"{side}: model_name must be a string, got {meta.get('model_name')!r:.60}")
    return meta


def read_safetensors_state(path: str | os.PathLike) -> dict:
    """``.safetensors`` weights and their JSON sidecar as a checkpoint dict of this
    version's format (sidecar version N describes what checkpoint format N does)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    _check_header(path)
    meta = _read_sidecar(path)
    try:
        weights = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, MemoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is corrupt ({msg[:160]})") from None
    state = {
        "format_version": meta["format_version"],
        "model": weights,
        "model_name": meta["model_name"],
        "model_kwargs": meta.get("model_kwargs"),
        "classes": meta.get("classes"),
        "preprocessing": meta.get("preprocessing"),
        "config": {},
    }
    # the sidecar's fields are named with the sidecar, the tensors with the weights file
    state = upgrade_state(state, str(sidecar_path(path)), weights_source=str(path))
    check_model_fields(state, str(sidecar_path(path)))
    return state


def load_safetensors_model(path: str | os.PathLike, *, weights: str = "auto") -> LoadedModel:
    """Rebuild a model from ``.safetensors`` weights and their JSON sidecar (no code runs)."""
    return model_from_state(read_safetensors_state(path), str(path), weights=weights)
