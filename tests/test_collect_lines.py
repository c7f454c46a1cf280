"""The line collectors' parts: Katib's formats and filters, bounded line splitting, following
rotated files, and a resumed log stream that neither loses nor repeats a line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubetune.collect import LineReader, LineSplitter, Tailer
from kubetune.rpc.metrics import Point
from kubetune.spec import SpecError, TuningJob
from kubetune_operator.logs import LogTarget, _Stream


def test_katib_text_format() -> None:
    reader = LineReader(["loss", "accuracy"], "epoch")
    assert reader.read(b"2026-12-07T10:00:00Z epoch=1 loss=0.5 accuracy=0.9 lr=0.1") == Point(
        1, {"loss": 0.5, "accuracy": 0.9}, []
    )
    assert reader.read("loss=0.4, accuracy=0.95") == Point(1, {"loss": 0.4, "accuracy": 0.95}, [])
    assert reader.read("epoch=2") is None  # sets the step of later lines
    assert reader.read("accuracy=nan loss=inf") == Point(2, {}, ["accuracy", "loss"])
    assert reader.read("loss=abc") is None  # not a number: not a metric
    assert reader.read("epoch=2.5 loss=1") is None and reader.counts.bad_step == 1
    counting = LineReader(["loss"])
    assert [counting.read(f"loss={v}").step for v in (3, 2, 1)] == [1, 2, 3]  # type: ignore[union-attr]


def test_filters_and_json() -> None:
    reader = LineReader(["loss"], None, [r"(?P<name>\w+):\s+(?P<value>[-\d.e]+)"])
    assert reader.read("loss: 0.25 acc: 1") == Point(1, {"loss": 0.25}, [])
    assert reader.read("loss=0.1") is None
    json_reader = LineReader(["loss"], "epoch", json_lines=True)
    line = '{"epoch": "4", "loss": "0.3", "timestamp": "2026-12-07T10:00:00Z"}'
    assert json_reader.read(line) == Point(4, {"loss": 0.3}, [])
    assert json_reader.read("[1, 2]") is None and json_reader.read("{not json") is None
    assert json_reader.read('{"loss": true}') is None


def test_splitter_bounds_memory() -> None:
    splitter = LineSplitter(limit=16)
    assert splitter.feed(b"a=1\nb=") == [b"a=1"]
    assert splitter.feed(b"x" * 100) == []
    assert len(splitter.buffer) == 0 and splitter.skipping
    assert splitter.feed(b"yy\nc=3\r\nd") == [b"c=3"]
    assert splitter.too_long == 1 and splitter.flush() == [b"d"]


@pytest.mark.parametrize(
    ("collector", "path", "reason"),
    [
        ({"kind": "stdout", "filter": ["(a"]}, "filter[0]", "not a regular expression"),
        ({"kind": "stdout", "filter": [r"(?P<name>\w+)"]}, "filter[0]", "(?P<value>...)"),
        ({"kind": "file"}, "path", "absolute path"),
        ({"kind": "stdout", "path": "/x"}, "path", "only the prometheus and file kinds"),
        ({"kind": "stdout", "format": "json"}, "format", "only the file kind"),
        ({"kind": "stdout", "stepMetric": "my step"}, "stepMetric", "metric name"),
    ],
)
def test_collector_spec_errors_name_the_field(
    collector: dict[str, Any], path: str, reason: str
) -> None:
    doc = {
        "metadata": {"name": "j"},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "x", "type": "int", "min": 1, "max": 3}],
            "algorithm": {"name": "random"},
            "metricsCollector": collector,
        },
    }
    with pytest.raises(SpecError) as info:
        TuningJob.parse(doc)
    (error,) = info.value.errors
    assert error.path == f"spec.metricsCollector.{path}" and reason in error.message


def test_tailer_follows_rotation_and_drains(tmp_path: Path) -> None:
    got: list[Point] = []
    tailer = Tailer(lambda key, points: got.extend(points), interval=0.02)
    log = tmp_path / "t.log"
    log.write_bytes(b"loss=9\n")  # an earlier attempt's line
    tailer.follow("t", log, LineReader(["loss"]), offset=log.stat().st_size)
    with open(log, "ab") as f:
        f.write(b"loss=1\n")
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    log.rename(tmp_path / "t.log.1")
    log.write_bytes(b"loss=2\nloss=3")  # rotated in; the last line has no newline yet
    tailer.drain("t")
    tailer.close()
    assert [p.metrics["loss"] for p in got] == [1.0, 2.0, 3.0]
    assert [p.step for p in got] == [1, 2, 3]


class _Follower:
    def __init__(self) -> None:
        self.points: list[Point] = []


def test_a_resumed_stream_neither_loses_nor_repeats_lines() -> None:
    target = LogTarget("ns", "pod", "main", lambda: LineReader(["loss"]))
    stream = _Stream(_Follower(), "job", ("ns", "t"), target)  # type: ignore[arg-type]
    first = [b"2026-12-07T10:00:00.1Z loss=1", b"2026-12-07T10:00:00.2Z loss=2"]
    first += [b"2026-12-07T10:00:00.2Z loss=3"]  # the same timestamp twice
    taken = [stream._take(line) for line in first]
    # the stream drops; the next one starts a little earlier (sinceSeconds) and goes on
    stream.replay, stream.seen = stream.taken, 0
    again = [b"2026-12-07T10:00:00.1Z loss=1", b"2026-12-07T10:00:00.2Z loss=2"]
    again += [b"2026-12-07T10:00:00.2Z loss=3", b"2026-12-07T10:00:00.2Z loss=4"]
    again += [b"2026-12-07T10:00:00.3Z loss=5"]
    taken += [stream._take(line) for line in again]
    values = [p.metrics["loss"] for p in taken if p is not None]
    assert values == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [p.step for p in taken if p is not None] == [1, 2, 3, 4, 5]
