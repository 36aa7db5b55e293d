"""The model registry: ``@register_model`` builders with what the rest of the package needs
to know about each network (timm's ``pretrained_cfg`` pattern), and ``create_model(name)``.

Code outside ``models/`` never compares a model's name: it asks :func:`model_info`
(input sizes, default preprocessing, towers, options, layer paths) or
:func:`input_size_for`.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import nn

__all__ = [
    "DEFAULT_MODEL",
    "PAPER_LAYERS",
    "ModelInfo",
    "Option",
    "create_model",
    "input_size_for",
    "list_models",
    "model_info",
    "option_types",
    "register_model",
]

# What `train`, `summary` and `bench --store` build when no model is named: the paper's.
DEFAULT_MODEL = "alexnet"

# The paper's names for the eight weight layers, input to output.
PAPER_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


@dataclass(frozen=True)
class Option:
    """One keyword option of a model: what ``create_model``, the checkpoint checks and the
    command line's ``--<name>`` flag know of it."""

    name: str
    type: object  # the annotation, resolved (int, float, bool, str, a Literal)
    default: object
    help: str


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model needs and offers.

    ``input_sizes``: the square input sides it accepts, the default first; empty when any
    side of at least ``min_input_size`` works (an adaptive pool). ``preprocessing``: the
    default ``resize``, ``resize_mode`` and ``normalize`` of its inputs
    (``alexnet.data.transforms``). ``layers``: the paper's layer names (``PAPER_LAYERS``)
    -> module paths in its state dict; ``norms``: the modules that belong to a layer
    (BatchNorm after a conv), frozen with it. ``option_specs``: the builder's keyword
    options, declared once: the fields of its config dataclass (help in each field's
    ``metadata``) and any keyword-only parameters of the builder (help in its docstring's
    ``Options:`` block).
    """

    name: str
    builder: Callable[..., nn.Module] = field(repr=False)
    summary: str
    input_sizes: tuple[int, ...]
    towers: bool
    layers: Mapping[str, str]
    preprocessing: Mapping[str, object]
    option_specs: Mapping[str, Option] = field(default_factory=dict)
    norms: Mapping[str, str] = field(default_factory=dict)
    min_input_size: int = 63

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.option_specs)

    @property
    def option_defaults(self) -> dict[str, object]:
        return {k: o.default for k, o in self.option_specs.items()}

    @property
    def option_docs(self) -> dict[str, str]:
        return {k: o.help for k, o in self.option_specs.items()}

    @property
    def default_input_size(self) -> int:
        return self.input_sizes[0] if self.input_sizes else 224

    @property
    def head(self) -> str:
        """Module path of the final classifier layer (fc8)."""
        return self.layers["fc8"]

    def accepts_input_size(self, size: int) -> bool:
        return size in self.input_sizes if self.input_sizes else size >= self.min_input_size


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    *,
    summary: str,
    input_sizes: tuple[int, ...],
    towers: bool,
    layers: Mapping[str, str],
    preprocessing: Mapping[str, object],
    norms: Mapping[str, str] | None = None,
    config: type | None = None,
    config_options: Sequence[str] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(num_classes=..., **options)`` under its function name; its
    options are its keyword-only parameters and the ``config_options`` fields of the
    dataclass ``config`` that it passes on."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        missing = set(PAPER_LAYERS) - set(layers)
        if missing:
            raise ValueError(f"model {fn.__name__!r}: no module path for {sorted(missing)}")
        options = _builder_options(fn)
        if config is not None:
            options |= _config_options(config, config_options)
        _MODELS[fn.__name__] = ModelInfo(
            name=fn.__name__,
            builder=fn,
            summary=summary,
            input_sizes=tuple(input_sizes),
            towers=towers,
            layers=MappingProxyType(dict(layers)),
            preprocessing=MappingProxyType(dict(preprocessing)),
            option_specs=MappingProxyType(options),
            norms=MappingProxyType(dict(norms or {})),
        )
        return fn

    return wrap


def _builder_options(fn: Callable) -> dict[str, Option]:
    hints = typing.get_type_hints(fn)
    docs = _option_docs(fn)
    return {
        p.name: Option(p.name, hints[p.name], p.default, docs.get(p.name, ""))
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "num_classes"
    }


def _config_options(config: type, names: Sequence[str]) -> dict[str, Option]:
    hints = typing.get_type_hints(config)
    by_name = {f.name: f for f in dataclasses.fields(config)}
    return {
        n: Option(n, hints[n], by_name[n].default, by_name[n].metadata.get("help", ""))
        for n in names
    }


def _option_docs(fn: Callable) -> dict[str, str]:
    """``name: text`` lines of the builder docstring's ``Options:`` block."""
    lines = inspect.getdoc(fn).splitlines() if fn.__doc__ else []
    out, inside = {}, False
    for line in lines:
        if line.strip() == "Options:":
            inside = True
        elif inside and not line.strip():
            break
        elif inside and ":" in line:
            name, text = line.strip().split(":", 1)
            out[name.strip()] = text.strip()
    return out


def option_types(name: str) -> dict[str, object]:
    """Option name -> its type annotation (resolved), for the command-line flags."""
    return {k: o.type for k, o in model_info(name).option_specs.items()}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODELS)


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; ``ValueError`` naming the known models otherwise."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _MODELS[name]


def input_size_for(name: str, model_kwargs: Mapping[str, object] | None = None) -> int:
    """The square input side model ``name`` built with ``model_kwargs`` takes."""
    info = model_info(name)
    size = (model_kwargs or {}).get("input_size") if "input_size" in info.options else None
    return int(size) if size is not None else info.default_input_size


def create_model(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs.

    Unknown names and options raise ``ValueError`` naming the accepted ones. The model
    gets ``model_name`` and ``model_kwargs`` attributes, so checkpoints and exports can
    rebuild it.
    """
    info = model_info(name)
    unknown = sorted(set(kwargs) - set(info.options))
    if unknown:
        raise ValueError(
            f"model {name!r} takes no option {', '.join(unknown)} "
            f"(its options: {', '.join(info.options) or 'none'})"
        )
    model = info.builder(num_classes=num_classes, **kwargs)
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    return model
