"""Headless Chromium for tests, driven through the DevTools protocol over `--remote-debugging-pipe`
(file descriptors 3 and 4, messages separated by NUL): no port, no network and no extra Python
package. Page errors are collected from the protocol itself (console.error, uncaught exceptions,
failed loads), not from Chromium's own stderr, which is full of unrelated D-Bus noise in a
container. Tests skip, saying so, where /usr/bin/chromium is absent (`make browser` installs it).

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

from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_S = 60.0  # generous: the test machine's 2 cores are often shared
SETTLE_S = 0.5  # after the load event, late console errors still count
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_chromium = pytest.mark.skipif(
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


def check_page(page: Path | str, workdir: Path, *, ready: str | None = None, then: tuple[str, ...] = (),
               width: int = 1200) -> PageCheck:
    """Load `page` (a file, or a URL) in headless Chromium; collect its errors, its images' sizes
    and a full-page screenshot. `ready`: a JavaScript expression polled until true (a page that
    renders after its load event, such as an app fetching its data); `then`: JavaScript run next,
    in order (a click), each followed by a pause for the page to redraw."""
    workdir.mkdir(parents=True, exist_ok=True)
    browser = DevTools(workdir / "profile", workdir / "chromium.log")
    try:
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=True)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)
        url = page if isinstance(page, str) else page.resolve().as_uri()
        browser.call("Page.navigate", {"url": url}, session=True)
        browser.wait_for("Page.loadEventFired")
        if ready is not None:
            wait_until(browser, ready)
        for script in then:
            browser.call("Runtime.evaluate", {"expression": script}, session=True)
            browser.drain(SETTLE_S)
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


def wait_until(browser: DevTools, expression: str, seconds: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + seconds
    while not browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session=True)["result"].get("value"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never satisfied {expression!r}")
        browser.drain(0.25)


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


