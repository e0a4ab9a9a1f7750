"""Debian's Chromium, headless, driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no
port, no extra package): load a page, and get back every request the page itself made (the Network domain's
``requestWillBeSent`` events of its own target, not the browser's background traffic), its DOM after loading,
and a screenshot of the whole page."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above (clear of the 3 and 4 Chromium's pipe takes)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@dataclass
class Loaded:
    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, itself included
    dom: str = ""
    status: int | None = None


class Browser:
    """One headless Chromium for a test; ``load`` a page at a time."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="twinsite-chromium-")
        to_chrome_r, self._to_chrome = (_high(fd) for fd in os.pipe())
        self._from_chrome, from_chrome_w = (_high(fd) for fd in os.pipe())
        # Chromium reads commands on fd 3 and writes its answers on fd 4
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec 3<&"$1" 4>&"$2"; shift 2; exec "$@"', "chromium", str(to_chrome_r),
             str(from_chrome_w), CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the protocol: JSON messages, each ended by a NUL byte -----------------------------------------------------
    def call(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == ident:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                result: dict[str, Any] = m.get("result", {})
                return result
            self.events.append(m)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise RuntimeError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        out: dict[str, Any] = json.loads(line)
        return out

    def _wait_event(self, method: str, session: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    # -- a page -------------------------------------------------------------------------------------------------
    def load(self, url: str, screenshot: Path | None = None, *, full_page: bool = True) -> Loaded:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            self.call("Network.enable", session)
            self.call("Page.enable", session)
            self.call("Emulation.setDeviceMetricsOverride", session, width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
            self.events.clear()
            self.call("Page.navigate", session, url=url)
            self._wait_event("Page.loadEventFired", session)
            time.sleep(0.3)  # (anything the page would still ask for after its load event)
            self.call("Runtime.evaluate", session, expression="1")  # (drains the events that came meanwhile)
            got = Loaded(url)
            for ev in self.events:
                if ev.get("sessionId") != session:
                    continue
                if ev.get("method") == "Network.requestWillBeSent":
                    got.requests.append(ev["params"]["request"]["url"])
                elif ev.get("method") == "Network.responseReceived" and ev["params"]["type"] == "Document":
                    got.status = ev["params"]["response"]["status"]
            dom = self.call("Runtime.evaluate", session, expression="document.documentElement.outerHTML")
            got.dom = dom["result"]["value"]
            if screenshot is not None:
                size = self.call("Page.getLayoutMetrics", session)["cssContentSize"]
                shot = self.call(
                    "Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": self.width, "scale": 1,
                      "height": max(self.height, size["height"]) if full_page else self.height},
                )  # fmt: skip
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            return got
        finally:
            self.call("Target.closeTarget", targetId=target)
