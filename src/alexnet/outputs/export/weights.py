"""Writing safetensors weights with a JSON sidecar: a checkpoint that cannot run code
(``alexnet export CKPT --format safetensors``). Reading them is the checkpoint's
business: ``alexnet.engine.checkpoint.safetensors``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from torch import nn

from alexnet.engine.checkpoint import LoadedModel
from alexnet.engine.checkpoint.safetensors import (
    SIDECAR_FORMAT,
    sidecar_path,
)
from alexnet.errors import UserError

from ._common import as_loaded, describe


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
