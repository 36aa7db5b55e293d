"""What ``hubconf.py``'s entry points do: a registered model, fresh or from a weights file.

    torch.hub.load("path/to/alexnet", "alexnet", source="local", num_classes=10)
    torch.hub.load("path/to/alexnet", "alexnet", source="local", weights="bvlc_alexnet.pt")

With ``weights`` (a checkpoint or ``.safetensors`` file, as ``alexnet.tasks.loading.load_model``
reads), the file decides the model: its class count and options are used, and an option
given here that differs from the file's is a one-line error (never silently ignored).
The model comes back in eval mode with ``classes`` and ``preprocessing`` attributes, as
``alexnet.load`` returns it (``alexnet.transform(model)`` feeds it). Without weights it
is ``create_model(name, **options)``, freshly initialised.
"""

from __future__ import annotations

import os

from torch import nn

from alexnet.engine.checkpoint import model_from_state, strip_prefixes
from alexnet.errors import UserError
from alexnet.models import create_model, model_info
from alexnet.tasks.loading import read_state

__all__ = ["hub_model"]


def hub_model(name: str, weights: str | os.PathLike | None = None, **options) -> nn.Module:
    """Model ``name`` built with ``options``, or the one in ``weights`` (module docstring)."""
    if weights is None:
        return create_model(name, **options)
    state = read_state(weights, mmap=True)  # checked before the model is built
    if state["model_name"] != name:
        raise UserError(f"{weights} holds model {state['model_name']!r}, not {name!r}")
    info = model_info(name)
    unknown = sorted(set(options) - set(info.options) - {"num_classes"})
    if unknown:
        raise UserError(
            f"model {name!r} takes no option {', '.join(unknown)} "
            f"(its options: {', '.join(info.options) or 'none'})"
        )
    built = info.option_defaults | dict(state.get("model_kwargs") or {})
    if state.get("classes"):
        built["num_classes"] = len(state["classes"])
    else:  # numbered classes: as many as fc8 has outputs
        bias = strip_prefixes(state["model"]).get(info.head + ".bias")
        built["num_classes"] = int(bias.shape[0]) if bias is not None else None
    differ = [
        f"{k}={v!r} (the file has {built.get(k)!r})"
        for k, v in options.items()
        if built.get(k) != v
    ]
    if differ:
        raise UserError(
            f"{weights} holds {name} built with other options: {', '.join(differ)}; "
            "leave them out to use the file's"
        )
    loaded = model_from_state(state, str(weights))
    model = loaded.model.eval()
    model.classes = list(loaded.classes)
    model.preprocessing = dict(loaded.preprocessing)
    return model
