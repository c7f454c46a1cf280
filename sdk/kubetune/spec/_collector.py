"""`spec.metricsCollector`: how a trial's metrics reach kubetune.

`grpc` (the default): the trainer pushes with `kubetune.report(...)`. `prometheus`: the trainer
only serves Prometheus metrics on `port` and `path`, and the operator (or the local runner)
scrapes them every `interval`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ._base import SpecModel

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
PROMETHEUS_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
MIN_INTERVAL = 0.1  # seconds; a tighter loop only burns the trial's CPU


def seconds(duration: str) -> float:
    """'5s', '500ms' or '1m' in seconds (the pattern is checked by validation)."""
    match = DURATION.match(duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


class MetricsCollector(SpecModel):
    """Where a trial's metrics come from: pushed over gRPC, or scraped from its endpoint."""

    kind: Literal["grpc", "prometheus"] = Field(
        "grpc", description="grpc: the trainer calls kubetune.report; prometheus: it is scraped."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port of the trial's metrics endpoint.")
    path: str = Field("/metrics", description="HTTP path of the trial's metrics endpoint.")
    interval: str = Field(
        "5s", description="Time between scrapes of one trial, e.g. 5s, 500ms or 1m."
    )
    timeout: str | None = Field(
        None, description="Limit of one scrape (default: the interval, at most 10s)."
    )
    step_metric: str = Field(
        "step", description="The gauge whose value is the step of the other metrics."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError(f"must be an absolute URL path such as /metrics (got {path!r})")
        return path

    @field_validator("interval", "timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if DURATION.match(value) is None:
            raise ValueError(f"must be a duration such as 5s, 500ms or 1m (got {value!r})")
        if seconds(value) < MIN_INTERVAL:
            raise ValueError(f"must be at least {MIN_INTERVAL * 1000:.0f}ms (got {value!r})")
        return value

    @field_validator("step_metric")
    @classmethod
    def _step_name(cls, name: str) -> str:
        if PROMETHEUS_NAME.match(name) is None:
            raise ValueError(f"{name!r} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        return name

    @property
    def interval_seconds(self) -> float:
        return seconds(self.interval)

    @property
    def timeout_seconds(self) -> float:
        if self.timeout is not None:
            return seconds(self.timeout)
        return min(self.interval_seconds, 10.0)
