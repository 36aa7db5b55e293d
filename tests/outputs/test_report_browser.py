"""The run report in a real browser: headless Chromium opens report.html, finds the
metrics table, decodes every image and fetches nothing but the file itself.

Chromium is driven over its DevTools pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on fds 3 and 4), so no Python package is needed and the
page is opened unmodified. Without a browser (Debian: ``apt-get install
chromium``; ``.ci/run`` installs it) the test skips and says so.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
]
PROBE = """(async () => {
  const imgs = [...document.images];
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const t = document.querySelector("table#metrics");
  const h = document.querySelector("#headline");
  const cfg = document.querySelector("details#config");
  return {
    table: t ? [...t.rows].map(r => [...r.cells].map(c => c.textContent.trim())) : null,
    images: imgs.map((im, k) => ({width: im.naturalWidth, decoded: decoded[k], alt: im.alt})),
    // the first screen: what lies above the fold of the window (800x600 headless)
    screen: innerHeight,
    headline: h ? {text: h.textContent, top: h.getBoundingClientRect().top} : null,
    tableBottom: t ? t.getBoundingClientRect().bottom : null,
    configOpen: cfg ? cfg.open : null,
    configHeight: cfg ? cfg.getBoundingClientRect().height : null,
  };
})()"""


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsPipe:
    """A headless Chromium and its DevTools protocol over the pipe (fd 3 in, fd 4 out)."""

    def __init__(self, exe: str, profile: Path) -> None:
        # sh moves our stdin/stdout pipes to fds 3/4, where --remote-debugging-pipe talks
        script = 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null'
        argv = ["sh", "-c", script, exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.buf, self.last_id, self.events = b"", 0, []

    def call(self, method: str, params: dict | None = None, session: str | None = None):
        self.last_id += 1
        msg = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        while True:
            m = self._recv()
            if m.get("id") == self.last_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_for(self, event: str, session: str) -> dict:
        """The first ``event`` of tab ``session``, taken off the event list."""
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == event and m.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._recv())

    def _recv(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer within 60 s")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise EOFError(f"Chromium exited (code {self.proc.poll()})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url: str) -> tuple[dict, list[str]]:
        """Load ``url`` in a new tab; -> (PROBE's result, every URL the page requested)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        sid = sid["sessionId"]
        self.call("Network.enable", session=sid)
        self.call("Page.enable", session=sid)
        self.call("Page.navigate", {"url": url}, session=sid)
        here = {"expression": "location.href", "returnByValue": True}
        while True:  # the blank tab's own load event may come first
            self.wait_for("Page.loadEventFired", sid)
            if self.call("Runtime.evaluate", here, session=sid)["result"]["value"] == url:
                break
        args = {"expression": PROBE, "awaitPromise": True, "returnByValue": True}
        result = self.call("Runtime.evaluate", args, session=sid)["result"]["value"]
        urls = [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == sid
        ]
        return result, urls

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - make sure it is gone
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = find_chromium()
    if exe is None:
        pytest.skip(
            "no Chromium found (/usr/bin/chromium or chromium on PATH); install it with "
            "`apt-get install chromium` to run the report's browser test"
        )
    b = DevToolsPipe(exe, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _helpers():
    path = Path(__file__).resolve().parents[1] / "fake_run.py"
    spec = importlib.util.spec_from_file_location("alexnet_tests_fake_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_opens_in_chromium_with_table_and_images(browser, tmp_path):
    from alexnet.outputs.report import write_report

    helpers = _helpers()
    data, classes = helpers.make_demo(tmp_path / "demo")
    # alexnet_owt: the same report, without the paper's LRN that is slow on 2 CPU cores
    run = helpers.make_fake_run(tmp_path / "run", data, classes, model_name="alexnet_owt")
    report = write_report(run, device="cpu")
    result, urls = browser.open(report.resolve().as_uri())
    assert result["table"] is not None, "table#metrics not found"
    assert result["table"][1][:2] == ["best", "2"]
    images = result["images"]
    assert len(images) == 4  # curves, kernels, predictions, confusion matrix
    assert all(im["decoded"] and im["width"] > 0 for im in images), images
    assert urls[0] == report.resolve().as_uri()
    assert all(u.startswith("data:") for u in urls[1:]), urls  # no network, no files
    # the first screen holds the result: the headline and the whole errors table
    assert result["headline"]["text"].startswith("best val top-1 error 41.00%")
    assert result["tableBottom"] < result["screen"], result
    assert result["configOpen"] is False and result["configHeight"] < 40  # folded: one line


def test_probe_sees_a_broken_image(browser, tmp_path):
    """The check can fail: a corrupt PNG decodes to natural width 0."""
    bad = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
    page = tmp_path / "broken.html"
    page.write_text(f'<table id="metrics"></table><img src="data:image/png;base64,{bad}">')
    result, _ = browser.open(page.as_uri())
    assert result["images"] == [{"width": 0, "decoded": False, "alt": ""}]
