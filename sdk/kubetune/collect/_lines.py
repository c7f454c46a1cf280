"""Metrics from the lines a trial prints or writes: Katib's formats, or the user's filters.

`LineReader` turns one line into a `Point` of the job's metrics (or None):
- text, by default Katib's StdOut format: `name=value` pairs anywhere on the line (an RFC 3339
  timestamp first is simply not a pair); with `filter`, each expression's named groups `name`
  and `value`, at every match;
- json (Katib's File JSON format): one object per line, values as numbers or numeric strings,
  an optional `timestamp` key, which is ignored.

Only the objective's and the additional metrics' names are taken. The step is the value of
`stepMetric` on the line, or the last one seen before it; without a step metric, the count of
lines that carried a metric. A non-finite value (`accuracy=nan`) is a failed measurement, as
for a gRPC report; a value that is not a number is not a metric. Lines past MAX_LINE bytes,
and bytes that are not UTF-8, are handled by `LineSplitter` and `LineReader` without ever
holding more than MAX_LINE bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..rpc.limits import MAX_STEP
from ..rpc.metrics import Point, usable
from ..spec import MetricsCollector, TuningJobSpec

MAX_LINE = 64 * 1024  # bytes; a longer line is dropped whole, never buffered
KATIB_PAIR = re.compile(r"(?P<name>[A-Za-z_][\w.\-/:]*)\s*=\s*(?P<value>[^\s,;]+)")


@dataclass
class ReadCounts:
    """What a reader made of its lines (for tests, telemetry and trial messages)."""

    lines: int = 0
    points: int = 0
    too_long: int = 0
    bad_step: int = 0


class LineReader:
    """Stateful: it counts lines and remembers the last step (one per trial stream)."""

    def __init__(
        self,
        names: Sequence[str],
        step_metric: str | None = None,
        filters: Sequence[str] = (),
        json_lines: bool = False,
    ) -> None:
        self.names = frozenset(names)
        self.step_metric = step_metric
        self.patterns = [re.compile(f) for f in filters] or [KATIB_PAIR]
        self.json_lines = json_lines
        self.step = 0  # the last step given to a point
        self.counts = ReadCounts()

    @classmethod
    def of(cls, spec: TuningJobSpec) -> LineReader:
        collector: MetricsCollector = spec.collector
        names = (spec.objective.metric, *spec.objective.additional_metrics)
        return cls(names, collector.step_metric, collector.filter, collector.format == "json")

    def read(self, line: bytes | str) -> Point | None:
        """The point on one line (without its newline), or None if it carries no metric."""
        self.counts.lines += 1
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        if len(text) > MAX_LINE:
            self.counts.too_long += 1
            return None
        pairs = self._json_pairs(text) if self.json_lines else self._text_pairs(text)
        metrics: dict[str, float] = {}
        step_value: float | None = None
        for name, value in pairs:
            if name == self.step_metric:
                step_value = value
            elif name in self.names:
                metrics[name] = value
        if step_value is not None:
            if not (usable(step_value) and step_value == int(step_value)):
                self.counts.bad_step += 1
                return None
            if not 0 <= step_value <= MAX_STEP:
                self.counts.bad_step += 1
                return None
            self.step = int(step_value)
        if not metrics:
            return None
        if self.step_metric is None:
            self.step += 1
        self.counts.points += 1
        good = {n: v for n, v in metrics.items() if usable(v)}
        return Point(self.step, good, sorted(n for n in metrics if n not in good))

    def _text_pairs(self, text: str) -> Iterator[tuple[str, float]]:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                value = _number(match.group("value"))
                if value is not None:
                    yield match.group("name"), value

    def _json_pairs(self, text: str) -> Iterator[tuple[str, float]]:
        try:
            data = json.loads(text)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        for name, raw in data.items():
            value = _number(raw) if isinstance(raw, str) else raw
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            yield str(name), float(value)


def _number(text: str) -> float | None:
    """A float from a printed value (nan and inf included), or None if it is not a number."""
    try:
        return float(text.strip())
    except ValueError:
        return None


class LineSplitter:
    """Bytes in, whole lines out. A line longer than `limit` is dropped (counted in `too_long`)
    and its bytes skipped up to the next newline, so memory stays bounded."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.skipping = False  # inside an over-long line
        self.too_long = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._take(data[start:end], lines, whole=True)
            start = end + 1
        self._take(data[start:], lines, whole=False)
        return lines

    def flush(self) -> list[bytes]:
        """The last line, if the stream ended without a newline."""
        lines: list[bytes] = []
        if self.buffer or self.skipping:
            self._take(b"", lines, whole=True)
        return lines

    def _take(self, part: bytes, lines: list[bytes], whole: bool) -> None:
        if not self.skipping:
            self.buffer += part
            if len(self.buffer) > self.limit:
                self.skipping = True
                self.too_long += 1
                self.buffer.clear()
        if whole:
            if not self.skipping:
                lines.append(bytes(self.buffer).rstrip(b"\r"))
            self.buffer.clear()
            self.skipping = False
