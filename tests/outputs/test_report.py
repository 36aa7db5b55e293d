"""The run report: sections, the metrics table, escaping, only data: URIs, missing pieces."""

from __future__ import annotations

import base64
import importlib.util
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from alexnet.errors import UserError
from alexnet.outputs.report import build_report, read_run, write_report


def _helpers():
    """tests/fake_run.py (tests import no siblings under --import-mode=importlib)."""
    path = Path(__file__).resolve().parents[1] / "fake_run.py"
    spec = importlib.util.spec_from_file_location("alexnet_tests_fake_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Collect(HTMLParser):
    """Every URL-bearing attribute, every <img>, the rows of table#metrics, <h2> titles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls, self.imgs, self.rows, self.titles = [], [], [], []
        self._in_metrics = self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "action", "poster")]
        if tag == "img":
            self.imgs.append(a)
        if tag == "table":
            self._in_metrics = a.get("id") == "metrics"
        if tag == "tr" and self._in_metrics:
            self.rows.append([])
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_metrics = False
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_metrics and self.rows and data.strip():
            self.rows[-1].append(data.strip())
        if self._in_h2:
            self.titles.append(data)


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    helpers = _helpers()
    data, classes = helpers.make_demo(root / "demo")
    return helpers.make_fake_run(root / "run", data, classes)


@pytest.fixture(scope="module")
def full_report(fake_run):
    path = write_report(fake_run, device="cpu")
    return path, path.read_text(encoding="utf-8")


def test_report_is_written_with_every_section(full_report, fake_run):
    path, text = full_report
    assert path == fake_run / "report.html"
    p = _parse(text)
    assert p.titles == [  # the result first, the configuration last
        "Result",
        "Training curves",
        "Sample predictions (Figure 4)",
        "Confusion matrix",
        "conv1 kernels (Figure 3)",
        "Configuration",
    ]
    assert "Section skipped" not in text
    # the headline, before any section: the best epoch of fake_run's three
    head = text[: text.index("<section>")]
    assert "best val top-1 error 41.00% (top-5 10.00%) at epoch 2 of 3; final 45.00%" in head
    assert "<details id='config'><summary>config.yaml (" in text  # folded (no `open`)


def test_report_metrics_table_holds_best_and_final(full_report):
    rows = _parse(full_report[1]).rows
    assert rows[0] == ["epoch", "val top-1 error", "val top-5 error"]
    assert rows[1] == ["best", "2", "41.00%", "10.00%"]
    assert rows[2] == ["final", "3", "45.00%", "12.00%"]


def test_report_is_self_contained(full_report):
    text = full_report[1]
    p = _parse(text)
    assert p.urls and all(u.startswith("data:image/png;base64,") for u in p.urls)
    assert not re.search(r"https?://|//cdn|@import|url\(", text)
    assert "default-src 'none'" in text  # a browser may not fetch anything either
    sizes = []
    for img in p.imgs:
        raw = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            sizes.append(im.size)
        assert img.get("alt")
    assert len(sizes) == 4 and all(w > 100 and h > 100 for w, h in sizes)
    assert sizes[0] == (1000, 400)  # the curves


def test_report_escapes_text(full_report):
    text = full_report[1]
    assert "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in text


def test_report_skips_missing_pieces_with_notes(tmp_path):
    run = tmp_path / "partial"
    (run / "plots").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "val_top1_error": 0.5, "val_top5_error": 0.2}\n'
        '{"epoch": 2, "val_top1_error": 0.4, "val_top5_error": 0.1}\n'
        '{"epoch": 3, "val_top1_e'  # cut short by a crash
    )
    report = build_report(run, device="cpu")
    skipped = dict(s.split(": ", 1) for s in report.skipped)
    assert set(skipped) == {
        "Configuration",
        "conv1 kernels (Figure 3)",
        "Sample predictions (Figure 4)",
        "Confusion matrix",
    }
    assert "best.pt" in skipped["conv1 kernels (Figure 3)"]
    rows = _parse(report.html).rows
    assert rows[1] == ["best", "2", "40.00%", "10.00%"]  # derived from metrics.jsonl
    assert report.html.count("Section skipped") == 4
    assert len(_parse(report.html).imgs) == 1  # the curves, drawn from the records


def test_report_notes_too_many_classes_for_a_confusion_matrix(fake_run):
    from types import SimpleNamespace

    from alexnet.outputs.report import _confusion

    setup = SimpleNamespace(classes=[str(i) for i in range(101)])
    with pytest.raises(ValueError, match="101 classes"):
        _confusion(read_run(fake_run), {"setup": setup})


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        write_report(tmp_path / "nope")
    with pytest.raises(UserError, match="not a run directory"):
        write_report(tmp_path)


@pytest.mark.slow
def test_train_writes_curves_and_a_complete_report(tmp_path, train_config):
    """``alexnet train`` draws plots/curves.png and report.html with every section."""
    from alexnet.outputs.runner import run_training

    data, _ = _helpers().make_demo(tmp_path / "demo")
    cfg = train_config(data, tmp_path / "run", epochs=1, seed=0)  # the paper's, width 1/8
    run_training(cfg)
    run = tmp_path / "run"
    assert (run / "plots" / "curves.png").stat().st_size > 0
    text = (run / "report.html").read_text(encoding="utf-8")
    p = _parse(text)
    assert "Section skipped" not in text and len(p.imgs) == 4
    assert p.rows[1][:2] == ["best", "1"]
