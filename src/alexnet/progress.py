"""Progress of every step that takes more than a moment: a tqdm bar on a terminal, plain
lines where the output is a file or a pipe (a redrawn bar becomes one line thousands of
characters long in a log).

``progress(iterable, total=..., desc=..., unit=...)`` is a ``tqdm``; off a terminal it
writes ``desc: 400/1000 img (40%), 98.2 img/s, eta 00:06`` when it starts, at most every
``LINE_SECONDS`` after, and once when it finishes. Training's own lines (one per
``--log-interval`` steps) are ``alexnet.engine.callbacks.StepLines``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

__all__ = ["LINE_SECONDS", "format_duration", "is_terminal", "progress"]

LINE_SECONDS = 10.0
_LINE = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {speed}, eta {remaining}"
_LINE_NO_TOTAL = "{desc}: {n_fmt} {unit}, {speed}, {elapsed}"


def is_terminal(stream: IO | None = None) -> bool:
    """True where ``stream`` (stderr) is a terminal that a bar can redraw."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False


class _Lines(tqdm):
    """A tqdm that writes one plain line per refresh instead of redrawing one with \\r."""

    @property
    def format_dict(self) -> dict[str, Any]:
        d = super().format_dict
        rate = d["rate"] or (d["n"] / d["elapsed"] if d["elapsed"] else None)
        d["speed"] = f"{rate:.1f} {d['unit']}/s" if rate else f"? {d['unit']}/s"
        return d

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # close() clearing the bar: write the final line instead
            self._ema_dt = lambda: None  # the overall rate, not the last interval's
            msg = None
            cleared = False
        else:
            cleared = True
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        return cleared


def progress(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str,
    unit: str = "it",
    file: IO | None = None,
    disable: bool = False,
) -> tqdm:
    """A progress bar for a step (see the module docstring): ``desc`` says what it does,
    ``unit`` what it counts (img, batch, file)."""
    stream = sys.stderr if file is None else file
    kwargs: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "disable": disable}
    if is_terminal(stream):
        return tqdm(iterable, file=stream, leave=False, dynamic_ncols=True, **kwargs)
    known = total is not None or (iterable is not None and hasattr(iterable, "__len__"))
    return _Lines(
        iterable,
        file=stream,
        leave=False,
        mininterval=LINE_SECONDS,
        maxinterval=LINE_SECONDS * 6,
        bar_format=_LINE if known else _LINE_NO_TOTAL,
        **kwargs,
    )


def format_duration(seconds: float) -> str:
    """``1m10s``, ``45s``, ``2h03m``: an estimate as a log line gives it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
