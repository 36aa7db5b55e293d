"""Reading ``.safetensors`` weights with their JSON sidecar: a checkpoint that cannot run code.

``model.safetensors`` holds the state dict, ``model.json`` the rest (format, model name
and options, class names, preprocessing: the checkpoint schema's fields, ``schema``).
Loading checks the 8-byte header length against the file size before safetensors parses
anything, and needs the sidecar; every failure is a one-line UserError. Writing is
``alexnet.outputs.export.weights``.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from alexnet.errors import UserError, check_format_version

from .schema import check_model_fields, checkpoint_dict, upgrade_state

SIDECAR_FORMAT = "alexnet-safetensors"
SIDECAR_VERSION = 2  # describes what checkpoint format 2 does (schema.CHECKPOINT_VERSION)


def sidecar_path(weights: str | os.PathLike) -> Path:
    """``model.safetensors`` -> ``model.json``."""
    return Path(weights).with_suffix(".json")


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
    state = checkpoint_dict(
        model=weights,
        model_name=meta["model_name"],
        model_kwargs=meta.get("model_kwargs"),
        classes=meta.get("classes"),
        preprocessing=meta.get("preprocessing"),
        config={},
    )
    state["format_version"] = meta["format_version"]  # the sidecar's, upgraded below
    # the sidecar's fields are named with the sidecar, the tensors with the weights file
    state = upgrade_state(state, str(sidecar_path(path)), weights_source=str(path))
    check_model_fields(state, str(sidecar_path(path)))
    return state
