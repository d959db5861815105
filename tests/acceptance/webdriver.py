"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP API (no Selenium).

The WebDriver protocol is a handful of JSON requests; the standard library's ``urllib`` is
enough and the test environment gains no dependency. Debian's ``chromium`` and
``chromium-driver`` packages provide the browser and the driver (``.ci/run`` installs them).
:func:`chromium_or_skip` fails instead of skipping where CI requires the browser.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Browser", "Element", "browser_session", "chromium_or_skip", "free_port"]

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_or_skip() -> tuple[str, str]:
    """``(browser, chromedriver)`` paths; a skip — or, under ``REQUIRE_CHROMIUM=1`` or
    ``REQUIRE_POSTGRES=1`` (CI), a failure — when either is missing."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = "Chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
    if "1" in (os.environ.get("REQUIRE_CHROMIUM"), os.environ.get("REQUIRE_POSTGRES")):
        pytest.fail(f"{reason}: required here (REQUIRE_CHROMIUM / REQUIRE_POSTGRES)")
    pytest.skip(reason)


class WebDriverError(AssertionError):
    """The driver answered with an error (no such element, stale element...)."""


class Browser:
    """One WebDriver session."""

    def __init__(self, driver_url: str, session: str) -> None:
        self._base = f"{driver_url}/session/{session}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return _request(method, self._base + path, body)

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def title(self) -> str:
        return str(self._call("GET", "/title"))

    @property
    def url(self) -> str:
        return str(self._call("GET", "/url"))

    def find(self, css: str) -> Element:
        found = self._call("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, found[ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, f[ELEMENT]) for f in found]

    def text(self, css: str) -> str:
        return self.find(css).text

    def script(self, source: str, *args: Any) -> Any:
        """Run ``source`` in the page (through the driver: the page's own CSP allows none)."""
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def resize(self, width: int, height: int) -> None:
        self._call("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page (the window is made as tall as the document first)."""
        height = int(self.script("return document.documentElement.scrollHeight"))
        self.resize(1400, min(max(height + 140, 600), 4000))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))


class Element:
    def __init__(self, browser: Browser, ident: str) -> None:
        self._browser = browser
        self._path = f"/element/{ident}"

    @property
    def text(self) -> str:
        return str(self._browser._call("GET", self._path + "/text"))

    def attribute(self, name: str) -> str | None:
        value = self._browser._call("GET", f"{self._path}/attribute/{name}")
        return None if value is None else str(value)

    def click(self) -> None:
        self._browser._call("POST", self._path + "/click", {})


def _request(method: str, url: str, body: Any = None, timeout: float = 60) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return json.loads(answer.read())["value"]
    except urllib.error.HTTPError as exc:
        value = json.loads(exc.read() or b"{}").get("value", {})
        raise WebDriverError(f"{value.get('error')}: {value.get('message')}") from None


@contextlib.contextmanager
def browser_session(profile_dir: Path) -> Iterator[Browser]:
    """Start chromedriver (its own process group) and one headless Chromium session; end the
    session, then chromedriver by its pid, then whatever is left of its group (Chromium's
    helper processes), and wait for it."""
    browser_path, driver_path = chromium_or_skip()
    port = free_port()
    driver = subprocess.Popen(
        [driver_path, f"--port={port}", "--allowed-ips=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    session = None
    try:
        _wait_ready(url, driver)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser_path,
                # As root (CI) Chromium needs --no-sandbox; /dev/shm is small in containers.
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1400,1000",
                    f"--user-data-dir={profile_dir}",
                ],
            },
        }
        created = _request("POST", f"{url}/session", {"capabilities": {"alwaysMatch": caps}})
        session = created["sessionId"]
        yield Browser(url, session)
    finally:
        if session is not None:
            with contextlib.suppress(OSError, WebDriverError):
                _request("DELETE", f"{url}/session/{session}", timeout=30)
        driver.terminate()
        try:
            driver.wait(timeout=20)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(driver.pid, signal.SIGKILL)  # Chromium helpers left in its group


def _wait_ready(url: str, driver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise AssertionError(f"chromedriver exited with {driver.returncode}")
        with contextlib.suppress(OSError, ValueError):
            if _request("GET", f"{url}/status", timeout=2).get("ready"):
                return
        time.sleep(0.1)
    raise AssertionError("chromedriver did not become ready in 30 s")
