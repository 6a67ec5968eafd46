"""The HTML pages in a real browser: headless Chromium loads them with no console error, every
image renders, and a screenshot of each is kept as a test artifact.

Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (file
descriptors 3 and 4, messages separated by NUL): no port, no network and no extra Python
package. Page errors are collected from the protocol itself (console.error, uncaught exceptions,
failed loads), not from Chromium's own stderr, which is full of unrelated D-Bus noise in a
container. Skipped, saying so, where /usr/bin/chromium is absent (`make browser` installs it).

Screenshots go to a folder under pytest's tmp dir and are copied to `test-artifacts/` at the
repository root (ignored by git).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, TINY_PARAMS
from dividemix import artifacts
from dividemix.audit.diff import diff_runs
from dividemix.audit.pages import diff_html
from dividemix.audit.sources import open_source

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_S = 60.0  # generous: the test machine's 2 cores are often shared
SETTLE_S = 0.5  # after the load event, late console errors still count
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install Debian's chromium (`make browser`)"
)


# --------------------------------------------------------------------------- DevTools protocol
class DevTools:
    """A headless Chromium and one DevTools session on a page, over the debugging pipe."""

    def __init__(self, profile: Path, log: Path):
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()

        def wire_fds():  # in the child: the protocol expects to read fd 3 and write fd 4
            os.dup2(to_chrome_read, 3)
            os.dup2(from_chrome_write, 4)

        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-quic", "--hide-scrollbars", "--mute-audio",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank",
        ]
        self._log = open(log, "wb")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, preexec_fn=wire_fds, close_fds=False)
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited (status {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        """Send one command and wait for its answer; events received meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, seconds: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + seconds
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._read_message(deadline))

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()  # only the browser this object started
            self.process.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        self._log.close()


@dataclass
class PageCheck:
    """What the browser saw on one page."""

    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, failed loads
    images: list[dict] = field(default_factory=list)  # alt, src (shortened), naturalWidth, naturalHeight
    screenshot: bytes = b""

    def problems(self) -> list[str]:
        broken = [f"image {i['alt'] or i['src']!r} did not render" for i in self.images if i["naturalWidth"] <= 0]
        return self.errors + broken


def page_errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries (e.g. failed loads) among `events`."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


IMAGES_JS = """Array.from(document.images).map(i => ({
  alt: i.alt, src: i.src.slice(0, 60), complete: i.complete, naturalWidth: i.naturalWidth,
  naturalHeight: i.naturalHeight}))"""


def check_page(page: Path, workdir: Path) -> PageCheck:
    """Load `page` in headless Chromium; collect its errors, its images' sizes and a full-page screenshot."""
    workdir.mkdir(parents=True, exist_ok=True)
    browser = DevTools(workdir / "profile", workdir / "chromium.log")
    try:
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=True)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)
        browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session=True)
        browser.wait_for("Page.loadEventFired")
        browser.drain(SETTLE_S)
        images = browser.call("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                              session=True)["result"]["value"]
        size = browser.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1}
        shot = browser.call("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True, "clip": clip}, session=True)
        browser.drain(0.1)
        return PageCheck(page_errors(browser.events), images, base64.b64decode(shot["data"]))
    finally:
        browser.close()


def keep_screenshot(check: PageCheck, tmp_path: Path, name: str) -> Path:
    """Save the screenshot under the test's tmp dir and copy it to test-artifacts/ (gitignored)."""
    folder = tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(check.screenshot)
    artifacts_dir = REPO / "test-artifacts"
    artifacts_dir.mkdir(exist_ok=True)
    shutil.copy(path, artifacts_dir / name)
    return path


# -------------------------------------------------------------------- the checker can fail
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_checker_passes_a_clean_page(tmp_path: Path):
    page = tmp_path / "ok.html"
    page.write_text(f'<!DOCTYPE html><html><body><p>ok</p><img alt="dot" src="data:image/png;base64,{PIXEL}">'
                    "</body></html>")
    check = check_page(page, tmp_path / "chrome")
    assert check.problems() == []
    assert check.images[0]["naturalWidth"] == 1
    assert check.screenshot.startswith(PNG_SIGNATURE)


def test_checker_catches_a_broken_image(tmp_path: Path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="gone" src="missing.png">'
                    '<img alt="garbage" src="data:image/png;base64,AAAA"></body></html>')
    problems = check_page(page, tmp_path / "chrome").problems()
    assert "image 'gone' did not render" in problems
    assert "image 'garbage' did not render" in problems


def test_checker_catches_console_errors_and_exceptions(tmp_path: Path):
    page = tmp_path / "noisy.html"
    page.write_text('<!DOCTYPE html><html><body><script>console.error("boom", 42);'
                    'setTimeout(() => { throw new Error("late failure"); }, 50);</script></body></html>')
    problems = check_page(page, tmp_path / "chrome").problems()
    assert any("console.error: boom 42" in p for p in problems), problems
    assert any("late failure" in p for p in problems), problems


# ------------------------------------------------------------------------------ the real pages
def test_report_page_renders_in_chromium(tiny_run: Path, tmp_path: Path):
    """report/index.html as the report stage builds it, from a tiny run."""
    from dividemix.config import parse_config, select
    from dividemix.evaluation import RunArtifacts, accuracy_curves, clean_mask, division_quality, summary_metrics
    from dividemix.noise import noisy_label_file
    from dividemix.report.build import PARAM_KEYS, build_report

    prepared, noisy = tiny_run / "data/prepared", tiny_run / "data/noisy/labels.parquet"
    run = RunArtifacts(tiny_run / "artifacts")
    clean = clean_mask(prepared, noisy)
    summary = noisy_label_file(dataset="digits", prepared=prepared, out=tmp_path / "labels.parquet",
                               **TINY_PARAMS["noise"])
    build_report(
        config_params=select(parse_config(TINY_PARAMS), list(PARAM_KEYS)), run=run, prepared=prepared,
        noisy=noisy, metrics=summary_metrics(accuracy_curves(run), division_quality(run, clean), clean),
        noise_summary=summary, out=tmp_path / "report",
    )
    check = check_page(tmp_path / "report/index.html", tmp_path / "chrome")
    keep_screenshot(check, tmp_path, "report_index.png")
    assert check.problems() == []
    assert len(check.images) >= 4
    assert all(image["naturalWidth"] >= 400 for image in check.images)


def test_diff_page_renders_in_chromium(tiny_run: Path, tmp_path: Path):
    """The `dividemix diff --html` page: a real run against a copy whose last division moved 30 samples."""
    other = tmp_path / "other"
    shutil.copytree(tiny_run / "data", other / "data")
    shutil.copytree(tiny_run / "artifacts/divisions", other / "artifacts/divisions")
    last = other / "artifacts/divisions/epoch_003.parquet"
    frame = artifacts.read_table(last, "divisions")
    moved = frame["sample_index"] < 30
    frame.loc[moved, "labeled"] = ~frame.loc[moved, "labeled"]
    frame.loc[moved, "clean_prob"] = 1.0 - frame.loc[moved, "clean_prob"]
    artifacts.write_table(last, "divisions", {c: frame[c].to_numpy() for c in frame.columns}, artifacts.read_meta(last))
    result = diff_runs(open_source(str(tiny_run)), open_source(str(other)), by_class=True)
    page = tmp_path / "diff.html"
    page.write_text(diff_html(result), encoding="utf-8")
    check = check_page(page, tmp_path / "chrome")
    keep_screenshot(check, tmp_path, "audit_diff.png")
    assert check.problems() == []
    assert len(check.images) == 5  # sizes, movements, quality, clean probabilities, per class
    assert all(image["naturalWidth"] >= 400 for image in check.images)
