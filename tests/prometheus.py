"""A real Prometheus server for the tests (Debian's `prometheus` package), on loopback.

`make test` installs the package where it can (root with apt); elsewhere the tests that need it
skip with a one-line reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT
from .waiting import free_port, wait_for

RULES = ROOT / "charts" / "kubetune" / "files" / "prometheus-rules.yaml"  # kubetune's alerts
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="no prometheus/promtool binary (apt-get install prometheus; make test does as root)",
)


class Prometheus:
    """Scrapes `targets` (job name -> host:port list) every second; `rules` are rule files."""

    def __init__(self, tmp: Path, targets: dict[str, list[str]], rules: list[Path] = ()) -> None:  # type: ignore[assignment]
        self.dir = tmp / "prometheus"
        self.dir.mkdir()
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(r) for r in rules],
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": hosts}]}
                        for job, hosts in targets.items()
                    ],
                }
            )
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def check_config(self) -> None:
        assert PROMTOOL is not None
        result = subprocess.run(
            [PROMTOOL, "check", "config", str(self.config)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def __enter__(self) -> Prometheus:
        assert PROMETHEUS is not None
        self.check_config()
        self.log = open(self.dir / "log", "wb")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 60, "Prometheus to be ready")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
        self.log.close()

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {(self.dir / 'log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return list(self.api("query", query=expr)["result"])

    def value(self, expr: str) -> float | None:
        """The value of a query with one result, or None when it has none."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 60) -> None:
        wait_for(
            lambda: self.value(expr) == expected, timeout, f"{expr} == {expected} in Prometheus"
        )
