"""`spec.metricsCollector`: how a trial's metrics reach kubetune.

`grpc` (the default): the trainer pushes with `kubetune.report(...)`. `prometheus`: the trainer
only serves Prometheus metrics on `port` and `path`, and the operator (or the local runner)
scrapes them every `interval`. `stdout`: the trainer prints `name=value` lines (Katib's format,
or any `filter`), which the operator reads from the pod's log and the local runner from the
trial's output. `file`: the same lines (or Katib's JSON lines) written to the file `path`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import SpecModel, field_error

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
PROMETHEUS_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
MIN_INTERVAL = 0.1  # seconds; a tighter loop only burns the trial's CPU
LINE_KINDS = ("stdout", "file")  # collectors that read printed lines
MAX_FILTERS = 16


def seconds(duration: str) -> float:
    """'5s', '500ms' or '1m' in seconds (the pattern is checked by validation)."""
    match = DURATION.match(duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


class MetricsCollector(SpecModel):
    """Where a trial's metrics come from: pushed over gRPC, scraped from its endpoint, or read
    from the lines it prints or writes to a file."""

    kind: Literal["grpc", "prometheus", "stdout", "file"] = Field(
        "grpc",
        description="grpc: the trainer calls kubetune.report; prometheus: it is scraped; "
        "stdout: its printed lines are read; file: the lines it writes to `path` are read.",
    )
    port: int = Field(8000, ge=1, le=65535, description="Port of the trial's metrics endpoint.")
    path: str | None = Field(
        None,
        description="prometheus: HTTP path of the endpoint (default /metrics). file: absolute "
        "path of the metrics file in the trial's container (required).",
    )
    interval: str = Field(
        "5s", description="Time between scrapes of one trial, e.g. 5s, 500ms or 1m."
    )
    timeout: str | None = Field(
        None, description="Limit of one scrape (default: the interval, at most 10s)."
    )
    step_metric: str | None = Field(
        None,
        description="The metric whose value is the step of the others on the same line (or "
        "page). Default: the gauge `step` when scraped; for printed lines, the count of lines "
        "with a metric so far.",
    )
    filter: list[str] = Field(
        default_factory=list,
        description="stdout and file (text): regular expressions with the named groups `name` "
        "and `value`, tried on each line. Default: Katib's `name=value` pairs, with an "
        "optional RFC 3339 timestamp first.",
    )
    format: Literal["text", "json"] = Field(
        "text",
        description="file: text (lines as for stdout) or json (one object per line, values as "
        "numbers or strings, Katib's format).",
    )

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

    @field_validator("filter")
    @classmethod
    def _filters(cls, filters: list[str]) -> list[str]:
        if len(filters) > MAX_FILTERS:
            raise ValueError(f"at most {MAX_FILTERS} expressions (got {len(filters)})")
        for i, text in enumerate(filters):
            try:
                pattern = re.compile(text)
            except re.error as exc:
                raise field_error(f"[{i}]", f"not a regular expression: {exc}") from None
            missing = {"name", "value"} - set(pattern.groupindex)
            if missing:
                groups = " and ".join(f"(?P<{g}>...)" for g in sorted(missing))
                raise field_error(f"[{i}]", f"needs the named group {groups}")
        return filters

    @model_validator(mode="after")
    def _by_kind(self) -> MetricsCollector:
        if self.kind == "prometheus":
            path = self.path if self.path is not None else "/metrics"
            if not path.startswith("/") or any(c.isspace() for c in path):
                raise field_error(
                    "path", f"must be an absolute URL path such as /metrics (got {path!r})"
                )
            if self.step_metric is not None and PROMETHEUS_NAME.match(self.step_metric) is None:
                raise field_error(
                    "stepMetric",
                    f"{self.step_metric!r} is not a Prometheus metric name "
                    "([a-zA-Z_:][a-zA-Z0-9_:]*)",
                )
        elif self.kind == "file":
            if self.path is None or not self.path.startswith("/"):
                raise field_error(
                    "path",
                    "the file collector needs the absolute path of the metrics file, e.g. "
                    f"/var/log/katib/metrics.log (got {self.path!r})",
                )
        elif self.path is not None:
            raise field_error(
                "path", f"only the prometheus and file kinds take a path ({self.kind})"
            )
        if self.filter and (self.kind not in LINE_KINDS or self.format == "json"):
            raise field_error("filter", "only stdout and file (format text) read lines by filter")
        if self.format == "json" and self.kind != "file":
            raise field_error("format", "only the file kind has a format")
        step = self.step_metric
        if step is not None and (not step or any(c.isspace() or c == "=" for c in step)):
            raise field_error("stepMetric", f"must be a metric name (got {step!r})")
        return self

    @property
    def reads_lines(self) -> bool:
        """Whether the metrics are lines the trial prints or writes (stdout, file)."""
        return self.kind in LINE_KINDS

    @property
    def url_path(self) -> str:
        """The HTTP path of a scraped trial's endpoint."""
        return self.path or "/metrics"

    @property
    def step_gauge(self) -> str:
        """The gauge a scrape reads the step from."""
        return self.step_metric or "step"

    @property
    def interval_seconds(self) -> float:
        return seconds(self.interval)

    @property
    def timeout_seconds(self) -> float:
        if self.timeout is not None:
            return seconds(self.timeout)
        return min(self.interval_seconds, 10.0)
