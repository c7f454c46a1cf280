"""A real browser for the dashboard tests: Debian's chromium driven by Playwright for Python,
and `kubetune dashboard` as a real process.

Playwright's own browser download cannot be used here, so it is given /usr/bin/chromium
(`python -m tests.tools chromium` installs it). Every page records console errors and uncaught
exceptions; screenshots go to test-artifacts/dashboard/ (git-ignored) for CI to keep.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (python -m tests.tools chromium)")
    return path


class Tab:
    """A page that remembers console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def goto(self, url: str, ready: bool = True) -> Any:
        response = self.page.goto(url)
        if ready:
            self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        return response

    def value(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def wait(self, script: str, arg: Any = None, timeout: float = 60) -> Any:
        """Wait until `script` (a JS function body's expression) is truthy in the page."""
        return self.page.wait_for_function(script, arg=arg, timeout=timeout * 1000)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def click_point(self, chart: str, series: int, x: float, y: float) -> None:
        """Click the pixel where ECharts draws data point (x, y) of a series in chart `chart`."""
        at = self.value(
            "([id, s, x, y]) => echarts.getInstanceByDom(document.getElementById(id))"
            ".convertToPixel({seriesIndex: s}, [x, y])",
            [chart, series, x, y],
        )
        box = self.page.locator(f"#{chart}").bounding_box()
        self.page.mouse.click(box["x"] + at[0], box["y"] + at[1])


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def new_tab(launched: Any) -> Tab:
    return Tab(launched.new_page(viewport={"width": 1400, "height": 1000}))


class Dashboard:
    """`kubetune dashboard ... --port 0 --json` running; its URL from its first line."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None, port: int = 0) -> None:
        command = [sys.executable, "-m", "kubetune.cli", "dashboard", *flags, f"--port={port}"]
        command.append("--json")
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.stderr: list[str] = []
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until it listens, or exits
        assert line, f"dashboard exited {self.proc.wait()}: {''.join(self.stderr)}"
        self.url = str(json.loads(line)["url"]).rstrip("/")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def close(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.drain.join(10)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
