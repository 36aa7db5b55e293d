"""The run report: one self-contained ``report.html`` per run directory.

The page leads with the result: a headline (the best validation error and its
epoch), the best and final errors (``summary.json``, else derived from
``metrics.jsonl``), the training curves, sample top-5 predictions with their images
(Figure 4) and a confusion matrix (up to 100 classes, on at most ``max_images``
validation images) from the best checkpoint; then conv1's kernels with each tower's
colour score (Figure 3); the configuration (``config.yaml``) last, folded away.

Self-contained: every image is a base64 ``data:`` PNG, the CSS is inline, and
a Content-Security-Policy (``default-src 'none'; img-src data:``) keeps a
browser from fetching anything. A section whose inputs are missing or fail is
replaced by a note, so ``alexnet train`` can always call ``write_report`` at
the end of a run.

Writing into a run directory holds its lock (``alexnet.lock.hold_lock``, the one
``train`` holds for its whole run), waiting for a training to end, and the page is
written to ``.report.html.tmp-PID`` and renamed over the old one, unless that one was
made from newer run files (each report records the newest modification time of the
files it read, ``made_from``): an older report never replaces a newer one. A killed
report's temporary file is deleted by the next report once its PID is gone.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.engine.callbacks import Callback
from alexnet.errors import UserError
from alexnet.lock import pid_alive

MAX_CONFUSION_CLASSES = 100
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta, .note { color: #666; } .note { font-style: italic; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 13px; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.headline { font-size: 1.3em; margin: 0.4em 0 0; }
summary { cursor: pointer; color: #444; }
"""


@dataclass
class Run:
    """What the run directory holds (each piece None/empty when absent or unreadable)."""

    path: Path
    config_text: str | None = None
    config: dict = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    summary: dict | None = None


@dataclass
class RunReport:
    html: str
    skipped: list[str]  # "section: reason" for every section left out
    made_from: int = 0  # newest st_mtime_ns of the run files read (0: none)
    kept_newer: bool = False  # save_report kept a report made from newer files


RUN_INPUTS = ("config.yaml", "metrics.jsonl", "summary.json")
_MADE_FROM = re.compile(rb'<meta name="alexnet-made-from" content="(\d+)">')


def made_from(run_dir: str | os.PathLike) -> int:
    """The newest modification time (ns) of the files a report reads from ``run_dir``."""
    path = Path(run_dir)
    files = [path / f for f in RUN_INPUTS] + list((path / "checkpoints").glob("*.pt"))
    times = []
    for f in files:
        with contextlib.suppress(OSError):
            times.append(f.stat().st_mtime_ns)
    return max(times, default=0)


def _made_from_of(page: Path) -> int | None:
    """What an existing report was made from (None: unknown, e.g. an older alexnet's)."""
    try:
        with open(page, "rb") as f:
            m = _MADE_FROM.search(f.read(4096))
    except OSError:
        return None
    return int(m[1]) if m else None


def enclosing_run(path: str | os.PathLike) -> Path | None:
    """The run directory ``path`` is written into (its folder or that folder's parent,
    e.g. RUN/plots/x.png), or None."""
    from alexnet.engine.rundir import RUN_FILES

    for d in list(Path(os.path.abspath(path)).parents)[:2]:
        if any((d / f).exists() for f in RUN_FILES[:2] + ("checkpoints",)):
            return d
    return None


def _say(message: str) -> None:
    print(f"alexnet: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def holding_run_of(out: str | os.PathLike, what: str) -> Iterator[Path | None]:
    """Hold the lock of the run directory ``out`` lies in (waiting, with a line on stderr,
    while a training holds it); nothing when ``out`` is in none."""
    from alexnet.lock import hold_lock

    run = enclosing_run(out)
    if run is None:
        yield None
        return
    with hold_lock(run, what, wait=_say):
        yield run


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _pct(x: object) -> str:
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read config.yaml, metrics.jsonl and summary.json, tolerating any of them missing."""
    import yaml

    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist")
    run = Run(path)
    if (path / "config.yaml").is_file():
        run.config_text = (path / "config.yaml").read_text(errors="replace")
        try:
            run.config = yaml.safe_load(run.config_text) or {}
        except yaml.YAMLError:
            run.config = {}
    if (path / "metrics.jsonl").is_file():
        for line in (path / "metrics.jsonl").read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(rec, dict):
                run.records.append(rec)
    if (path / "summary.json").is_file():
        try:
            run.summary = json.loads((path / "summary.json").read_text())
        except json.JSONDecodeError:
            run.summary = None
    if run.config_text is None and not run.records and run.summary is None:
        has_ckpt = any((path / "checkpoints").glob("*.pt"))
        if not has_ckpt:
            raise UserError(f"{path} is not a run directory (no config.yaml, metrics.jsonl, ...)")
    return run


# ---- sections: each returns HTML or raises (the report then shows a note) ----


def _configuration(run: Run, _ctx: dict) -> str:
    """config.yaml, folded away: the page leads with the result."""
    if run.config_text is None:
        raise FileNotFoundError("config.yaml is missing")
    lines = len(run.config_text.splitlines())
    return (
        f"<details id='config'><summary>config.yaml ({lines} settings)</summary>"
        f"<pre>{_esc(run.config_text)}</pre></details>"
    )


def _curves(run: Run, _ctx: dict) -> str:
    from alexnet.outputs.viz import figure_png_bytes, plot_curves

    png_path = run.path / "plots" / "curves.png"
    if run.records:  # redraw: always current, and the PNG may predate the last epoch
        png = figure_png_bytes(plot_curves(run.records))
    elif png_path.is_file():
        png = png_path.read_bytes()
    else:
        raise FileNotFoundError("no metrics.jsonl records and no plots/curves.png")
    return _img(png, "training curves: loss and error against epoch")


def _summary(run: Run) -> dict:
    if run.summary and (run.summary.get("best") or run.summary.get("final")):
        return run.summary
    valid = [r for r in run.records if isinstance(r.get("val_top1_error"), (int, float))]
    valid = [r for r in valid if math.isfinite(r["val_top1_error"])]
    if not run.records:
        raise FileNotFoundError("neither summary.json nor metrics.jsonl records")
    best = min(valid, key=lambda r: (r["val_top1_error"], r.get("epoch", 0)), default=None)
    return {"best": best, "final": run.records[-1], "epochs": run.records[-1].get("epoch")}


def _metrics(run: Run, _ctx: dict) -> str:
    s = _summary(run)
    rows = []
    for name in ("best", "final"):
        r = s.get(name) or {}
        rows.append(
            f"<tr><td>{name}</td><td>{_esc(r.get('epoch', '-'))}</td>"
            f"<td>{_pct(r.get('val_top1_error'))}</td><td>{_pct(r.get('val_top5_error'))}</td></tr>"
        )
    table = (
        '<table id="metrics"><thead><tr><th></th><th>epoch</th><th>val top-1 error</th>'
        f"<th>val top-5 error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    extra = []
    for key, label, fmt in (
        ("epochs", "epochs", "{:g}"),
        ("wall_seconds", "wall time (s)", "{:,.1f}"),
        ("images_per_second", "training images/s", "{:,.1f}"),
    ):
        v = s.get(key)
        if isinstance(v, (int, float)):
            extra.append(f"{label}: {fmt.format(v)}")
    meta = f"<p class='meta'>{_esc('; '.join(extra))}</p>" if extra else ""
    return table + meta + _epochs_table(run.records)


def _epochs_table(records: list[dict]) -> str:
    """Every epoch's record, folded away under a <details>."""
    if not records:
        return ""
    cols = [
        ("epoch", "epoch", str),
        ("train_loss", "train loss", "{:.4f}".format),
        ("train_top1_error", "train top-1", _pct),
        ("val_loss", "val loss", "{:.4f}".format),
        ("val_top1_error", "val top-1", _pct),
        ("val_top5_error", "val top-5", _pct),
        ("lr", "lr", "{:.2e}".format),
        ("images_per_second", "images/s", "{:,.1f}".format),
        ("seconds", "seconds", "{:,.1f}".format),
    ]

    def cell(r: dict, key: str, fmt) -> str:
        v = r.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return f"<td>{_esc(fmt(v)) if ok else '-'}</td>"

    head = "".join(f"<th>{_esc(label)}</th>" for _, label, _ in cols)
    body = "".join("<tr>" + "".join(cell(r, k, f) for k, _, f in cols) + "</tr>" for r in records)
    return (
        f"<details><summary>all {len(records)} epochs</summary><table id='epochs'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>"
    )


def _checkpoint(run: Run) -> Path:
    for name in ("best.pt", "last.pt"):
        p = run.path / "checkpoints" / name
        if p.is_file():
            return p
    raise FileNotFoundError("no checkpoints/best.pt or last.pt")


def _setup(run: Run, ctx: dict):
    """The best checkpoint loaded once for all model sections (errors are remembered)."""
    if "setup" not in ctx:
        from alexnet.tasks.inference import load_for_inference

        try:
            ckpt = _checkpoint(run)
            ctx["setup"] = load_for_inference([str(ckpt)], device=ctx["device"])
            ctx["ckpt"] = ckpt
        except Exception as e:  # noqa: BLE001 - shown in every model section
            ctx["setup"] = e
    if isinstance(ctx["setup"], Exception):
        raise ctx["setup"]
    return ctx["setup"]


def _data_source(run: Run) -> str:
    """The dataset the run used: config ``data``, else the demo dataset it generated."""
    data = run.config.get("data")
    if data:
        return str(data)
    from alexnet.data.demo import demo_root

    root = demo_root(run.config.get("demo") or {})
    if not root.is_dir():
        raise FileNotFoundError(f"the run's demo dataset {root} is gone")
    return str(root)


def _kernels(run: Run, ctx: dict) -> str:
    from alexnet.outputs.viz import conv1_towers, figure_png_bytes, plot_filters

    model = _setup(run, ctx).models[0].model
    rows = "".join(
        f"<tr><td>{_esc(t.label)}</td><td>{float(t.chroma.mean()):.3f}</td></tr>"
        for t in conv1_towers(model)
    )
    return (
        f"<p class='meta'>from {_esc(ctx['ckpt'].name)}; chroma = share of a kernel's variance "
        "in colour differences (0 grey-level, ~0.67 random weights)</p>"
        f"<table><tr><th>tower</th><th>mean chroma</th></tr>{rows}</table>"
        + _img(figure_png_bytes(plot_filters(model)), "conv1 kernels")
    )


def _predictions(run: Run, ctx: dict) -> str:
    from alexnet.outputs.viz import figure_png_bytes
    from alexnet.outputs.viz.probes import sample_predictions

    fig, _ = sample_predictions(_setup(run, ctx), _data_source(run), count=ctx["samples"])
    return _img(figure_png_bytes(fig), "validation images with their top-5 predictions")


def _confusion(run: Run, ctx: dict) -> str:
    from alexnet.outputs.viz import figure_png_bytes
    from alexnet.outputs.viz.probes import confusion_on

    setup = _setup(run, ctx)
    if len(setup.classes) > MAX_CONFUSION_CLASSES:
        raise ValueError(f"{len(setup.classes)} classes (drawn up to {MAX_CONFUSION_CLASSES})")
    fig, m = confusion_on(setup, _data_source(run), max_images=ctx["max_images"])
    return f"<p class='meta'>{int(m.sum())} validation images</p>" + _img(
        figure_png_bytes(fig), "confusion matrix"
    )


# The result first (the errors, the curves, what the model says of a few images), then
# what it learned, and the configuration last, folded.
SECTIONS: list[tuple[str, Callable[[Run, dict], str]]] = [
    ("Result", _metrics),
    ("Training curves", _curves),
    ("Sample predictions (Figure 4)", _predictions),
    ("Confusion matrix", _confusion),
    ("conv1 kernels (Figure 3)", _kernels),
    ("Configuration", _configuration),
]


def _headline(run: Run) -> str:
    """``best val top-1 error 41.00% (epoch 2 of 3); final 45.00%``, or "" without records."""
    try:
        s = _summary(run)
    except FileNotFoundError:
        return ""
    best, final = s.get("best") or {}, s.get("final") or {}
    if not isinstance(best.get("val_top1_error"), (int, float)):
        return ""
    text = (
        f"best val top-1 error {_pct(best['val_top1_error'])} "
        f"(top-5 {_pct(best.get('val_top5_error'))}) at epoch {best.get('epoch', '-')} "
        f"of {s.get('epochs', final.get('epoch', '-'))}"
    )
    if final and final.get("epoch") != best.get("epoch"):
        text += f"; final {_pct(final.get('val_top1_error'))}"
    return f"<p class='headline' id='headline'>{_esc(text)}</p>"


def build_report(
    run_dir: str | os.PathLike,
    *,
    device: str = "auto",
    max_images: int = 500,
    samples: int = 8,
    progress: bool = True,
) -> RunReport:
    """Render the report's HTML; a section that cannot be drawn becomes a note.
    ``progress``: a bar (a line per section off a terminal) naming the section drawn."""
    from alexnet.progress import progress as progress_bar

    stamp = made_from(run_dir)  # before reading: a file changed meanwhile counts as newer
    run = read_run(run_dir)
    ctx = {"device": device, "max_images": max_images, "samples": samples}
    body, skipped = [], []
    bar = progress_bar(total=len(SECTIONS), desc="report", unit="section", disable=not progress)
    for title, section in SECTIONS:
        bar.set_description_str(f"report: {title.lower()}", refresh=False)
        bar.update()
        try:
            content = section(run, ctx)
        except Exception as e:  # noqa: BLE001 - a missing piece never sinks the report
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            skipped.append(f"{title}: {reason}")
            content = f"<p class='note'>Section skipped: {_esc(reason)}</p>"
        body.append(f"<section><h2>{_esc(title)}</h2>\n{content}\n</section>")
    bar.set_description_str("report", refresh=False)
    bar.close()
    model = run.config.get("model", "")
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="alexnet-made-from" content="{stamp}">'
        f"<title>{_esc(run.path.resolve().name)}: alexnet run report</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Run report: {_esc(run.path.resolve().name)}</h1>"
        f"<p class='meta'>{_esc(model)} &middot; {_esc(run.path.resolve())} &middot; "
        f"generated {_esc(when)}</p>\n{_headline(run)}\n" + "\n".join(body) + "\n</body></html>\n"
    )
    return RunReport(page, skipped, stamp)


def write_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    max_images: int = 500,
    samples: int = 8,
    progress: bool = True,
) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) atomically, holding the run's lock when
    ``out`` is in a run directory; returns its path."""
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    if not Path(run_dir).is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    with holding_run_of(out, "report"):
        report = build_report(
            run_dir, device=device, max_images=max_images, samples=samples, progress=progress
        )
        return save_report(report, out)


def save_report(report: RunReport, path: Path) -> Path:
    """Write ``report`` to ``path`` by a rename, unless ``path`` holds a report made from
    newer run files (then ``report.kept_newer``). A full disk: one line naming ``path``,
    nothing left behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create its folder: {e.strerror or e}") from None
    _remove_dead_temporaries(path)
    existing = _made_from_of(path)
    if existing is not None and existing > report.made_from:
        report.kept_newer = True
        return path
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(report.html, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write the report: {e.strerror or e}") from None
    return path


def _remove_dead_temporaries(path: Path) -> None:
    """``.report.html.tmp-PID`` files of reports that were killed (PID gone)."""
    pattern = re.compile(re.escape(f".{path.name}.tmp-") + r"(\d+)")
    with contextlib.suppress(OSError):
        for f in path.parent.iterdir():
            m = pattern.fullmatch(f.name)
            if m and int(m[1]) != os.getpid() and not pid_alive(int(m[1])):
                f.unlink(missing_ok=True)


class ReportCallback(Callback):
    """Writes ``RUN/report.html`` when training ends (rank 0); a failure is a warning,
    never the end of a finished run."""

    def on_train_end(self, trainer, summary: dict) -> None:
        if not trainer.dist.is_main:
            return
        import sys

        try:
            path = write_report(trainer.cfg.out, progress=not trainer.cfg.quiet)
            if not trainer.cfg.quiet:
                print(f"report: {path}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - the report must never cost a finished run
            print(f"warning: could not write the run report: {e}", file=sys.stderr, flush=True)
