"""Command-line flags generated from ``TrainConfig`` and the model registry.

A short generator of our own rather than a library (jsonargparse, tyro): the settings
are one flat dataclass of plain types, argparse already gives the help layout and
error style of every other command, and a new dependency would be a second way of
parsing. Per field: ``--kebab-name``; the type from its annotation (``int``,
``float``, ``str``, ``X | None``, ``bool`` as ``--flag/--no-flag``, ``Literal`` as
choices, ``dict`` as a YAML mapping); the help from the docstring under the field;
the ``--help`` section from the ``# ---- title`` comment above it. Every flag defaults
to None, "not given", so presets and ``--config`` files keep their values.

Model options (``--init``, ``--dropout-form``, ``--lrn-k``, ...) come from the
registry: every option of a registered builder, typed by its annotation, described
by its docstring's ``Options:`` block; they go into ``model_kwargs``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import typing
from typing import Any

import yaml

from alexnet.engine.config import NONE_WORDS, TrainConfig, literal_choices, setting_types

__all__ = ["add_model_options", "add_settings", "model_options_from_args", "settings_from_args"]

_GROUP = re.compile(r"^\s*# ---- (.+)$")
# The names timm's train.py and torchvision's references/classification/train.py give
# these settings, accepted beside ours.
ALIASES = {"batch_size": ("-b",), "workers": ("-j",), "out": ("--output",)}
# set through other flags or read from the data: no flag of their own
_MODEL_OPTIONS_SKIPPED = ("input_size",)


def field_docs(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """(field -> the docstring under it, field -> the title of its ``# ---- `` section)."""
    source = inspect.getsource(cls)
    body = ast.parse(source).body[0].body
    docs, lines = {}, {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines[node.target.id] = node.lineno
            if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    groups, title = {}, "settings"
    src_lines = source.splitlines()
    for name, lineno in sorted(lines.items(), key=lambda kv: kv[1]):
        for line in src_lines[: lineno - 1]:
            m = _GROUP.match(line)
            if m:
                title = m.group(1).strip()
        groups[name] = title
    return docs, groups


def _yaml_mapping(text: str) -> dict:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a mapping such as '{{key: value}}', got {text!r}"
        )
    return value


def _optional(kind: type):
    """``kind``, or the word itself for ``none``/``null``: ``resolve_config`` turns it into
    None (a None from argparse means "not given" and keeps the preset's value)."""

    def parse(text: str):
        return text if text.lower() in NONE_WORDS else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _argument(tp: Any) -> dict:
    """argparse keywords for a field or option of type ``tp``."""
    choices = literal_choices(tp)
    if choices is not None:
        return {"choices": list(choices), "type": type(choices[0])}
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if args else tp
    nullable = type(None) in typing.get_args(tp)
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base is dict:
        return {"type": _yaml_mapping, "metavar": "YAML"}
    kind = base if base in (int, float, str) else str
    return {"type": _optional(kind) if nullable else kind}


def add_settings(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """One flag per field of ``cls``, grouped by its ``# ---- `` sections."""
    docs, groups = field_docs(cls)
    types = setting_types() if cls is TrainConfig else typing.get_type_hints(cls)
    sections: dict[str, argparse._ArgumentGroup] = {}
    defaults = cls()
    for name, tp in types.items():
        title = groups.get(name, "settings")
        group = sections.setdefault(title, parser.add_argument_group(title))
        default = getattr(defaults, name)
        shown = "" if default in (None, {}) else f" (default: {default})"
        aliases = ALIASES.get(name, ()) if cls is TrainConfig else ()
        group.add_argument(
            *[a for a in aliases if not a.startswith("--")],
            f"--{name.replace('_', '-')}",
            *[a for a in aliases if a.startswith("--")],
            dest=name,
            default=None,
            help=(docs.get(name, "") + shown).replace("%", "%%"),
            **_argument(tp),
        )


def settings_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> dict[str, Any]:
    """The settings the user gave on the command line (flags left out are None)."""
    names = typing.get_type_hints(cls)
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _model_options() -> dict[str, tuple[Any, str, list[str]]]:
    """option -> (type, help, models that take it), over every registered model."""
    from alexnet.models import list_models, model_info, option_types

    out: dict[str, tuple[Any, str, list[str]]] = {}
    for model in list_models():
        info = model_info(model)
        for name, tp in option_types(model).items():
            if name in _MODEL_OPTIONS_SKIPPED:
                continue
            prev = out.get(name)
            doc = (prev[1] if prev else "") or info.option_docs.get(name, "")
            out[name] = (tp, doc, [*(prev[2] if prev else []), model])
    return out


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """A flag per model option of the registry (into ``model_kwargs``)."""
    group = parser.add_argument_group("model options (create_model; see --model)")
    for name, (tp, doc, models) in _model_options().items():
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"model_option_{name}",
            default=None,
            help=f"{doc} [{', '.join(models)}]".replace("%", "%%"),
            **_argument(tp),
            **({} if literal_choices(tp) or tp is bool else {"metavar": name.upper()}),
        )


def model_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The model options given as flags, for ``model_kwargs``."""
    return {
        name: getattr(args, f"model_option_{name}")
        for name in _model_options()
        if getattr(args, f"model_option_{name}", None) is not None
    }
