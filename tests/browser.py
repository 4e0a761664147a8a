"""A headless Chromium driven through the DevTools protocol over pipes (no extra package).

``Browser`` starts Debian's ``/usr/bin/chromium`` with ``--remote-debugging-pipe``:
DevTools messages are NUL-terminated JSON on file descriptors 3 (to Chromium)
and 4 (from it). :meth:`Browser.open` loads a page and records what a person
would see in its console (console errors, uncaught exceptions, failed loads).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from riverguard.report import BAND_COLOR, VALUE_COLOR

CHROMIUM = os.environ.get("RIVERGUARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]


#: The plots' canvases (through shadow roots, where Bokeh draws), as ``canvases``.
_FIND_CANVASES = """
  const found = [], stack = [document];
  while (stack.length) {
    const root = stack.pop();
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) stack.push(el.shadowRoot);
      if (el.tagName === 'CANVAS') found.push(el);
    }
  }
  const canvases = found.filter(c => c.width >= 100 && c.height >= 60);
"""


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


#: Per canvas: its size, how many pixels are painted (not white once composited over the white page)
#: and how many have the report's band colour.
CANVASES_JS = """(() => {%s
  const band = [%d, %d, %d].map(c => Math.round(c * 0.5 + 255 * 0.5));  // drawn at alpha 0.5 over white
  return canvases.map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let painted = 0, banded = 0;
    for (let i = 0; i < d.length; i += 4) {
      const a = d[i + 3] / 255, rgb = [0, 1, 2].map(k => d[i + k] * a + 255 * (1 - a));  // as seen on white
      if (a > 0 && !(rgb[0] > 245 && rgb[1] > 245 && rgb[2] > 245)) painted++;
      if ([0, 1, 2].every(k => Math.abs(rgb[k] - band[k]) < 6)) banded++;
    }
    return [c.width, c.height, painted, banded];
  });
})()""" % (_FIND_CANVASES, *_rgb(BAND_COLOR))

#: Per canvas: its width and in how many of its pixel columns the value's line colour is drawn (as seen
#: on white, each channel within 40 of it: the middle of an anti-aliased line).
LINE_COLUMNS_JS = """(() => {%s
  const line = [%d, %d, %d];
  return canvases.map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, columns = new Set();
    for (let i = 0; i < d.length; i += 4) {
      const a = d[i + 3] / 255;
      if (a > 0 && [0, 1, 2].every(k => Math.abs(d[i + k] * a + 255 * (1 - a) - line[k]) < 40))
        columns.add((i / 4) %% c.width);
    }
    return [c.width, columns.size];
  });
})()""" % (_FIND_CANVASES, *_rgb(VALUE_COLOR))


def open_rendered(browser: Browser, path: Path, plots: int, timeout: float = 60.0,
                  metric: int = 0) -> list[list[int]]:
    """Load the report at ``path``, wait until ``2 * plots`` canvases (value and score; one, the score,
    for each of the ``metric`` plots among them of a metric-level series) are painted and no longer
    change; return those (Bokeh gives each plot a second canvas for overlays such as a zoom box, empty
    until used)."""
    figures = 2 * plots - metric
    browser.open(Path(path).resolve().as_uri())
    deadline = time.monotonic() + timeout
    last = None
    while True:
        canvases = browser.evaluate(CANVASES_JS)
        painted = [c for c in canvases if c[2] > 500]
        if len(painted) >= figures and canvases == last:
            assert len(canvases) == 2 * figures, canvases
            return painted
        if time.monotonic() > deadline:
            raise BrowserError(f"not every plot was painted within {timeout}s: {canvases}")
        last = canvases
        time.sleep(0.3)


def available() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


def _pipe_fds(read_end: int, write_end: int) -> None:
    """In the child: the pipe ends as fds 3 and 4 (first moved above 4, so neither clobbers the other)."""
    high_r = fcntl.fcntl(read_end, fcntl.F_DUPFD, 10)
    high_w = fcntl.fcntl(write_end, fcntl.F_DUPFD, 10)
    os.dup2(high_r, 3)
    os.dup2(high_w, 4)


class BrowserError(Exception):
    pass


class Browser:
    """One Chromium process with one page; use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="riverguard-chromium-")
        to_r, self._to = os.pipe()
        self._from, from_w = os.pipe()
        # Chromium reads fd 3 and writes fd 4: move the pipe ends there in the child.
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False,  # riverguard's own descriptors are not inheritable; 3 and 4 are set below
            preexec_fn=lambda: _pipe_fds(to_r, from_w),
        )
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # -- protocol -------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to, data):]

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise BrowserError("no answer from chromium in time")
            ready, _, _ = select.select([self._from], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium exited ({self.proc.poll()})")
                self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self.events.append(answer)

    def wait_for(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                self.events.remove(event)
                return event
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            event = self._receive(deadline)
            if event.get("method") == method:
                return event
            if "method" in event:
                self.events.append(event)

    # -- what a test uses -----------------------------------------------------

    def open(self, url: str) -> float:
        """Load ``url`` and wait for its load event; return the seconds it took."""
        started = time.monotonic()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        return time.monotonic() - started

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True, timeout=int((timeout or self.timeout) * 1000))
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed requests seen so far."""
        self.call("Runtime.evaluate", session=True, expression="0")  # collect pending events
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append("exception: " + str(details.get("exception", {}).get("description") or details.get("text")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append("log: " + params["entry"]["text"])
            elif method == "Network.loadingFailed":
                found.append("network: " + params.get("errorText", "?"))
        return found

    def requests(self) -> list[str]:
        """URLs the page requested (a self-contained page requests only itself)."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, full_page: bool = True) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"])
        Path(path).write_bytes(data)
        return data

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to)
        os.close(self._from)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
