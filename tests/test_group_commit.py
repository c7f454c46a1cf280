"""Group commit: reports are acknowledged only once written, in few writes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubetune_operator.group_commit import CommitPoint as Point
from kubetune_operator.group_commit import GroupCommitter


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[Point]]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, trial: str, points: list[Point]) -> None:
        with self.lock:
            if self.fail:
                raise ConnectionError("API server unavailable")
            self.calls.append((trial, list(points)))


def test_every_acknowledged_report_is_written_in_few_writes() -> None:
    recorder = Recorder()
    committer = GroupCommitter(recorder, interval=0.1)
    acknowledged: list[tuple[str, int]] = []

    def report(i: int) -> None:
        trial = f"t-{i % 4}"
        committer.submit(trial, [(i, {"acc": i / 100})])
        acknowledged.append((trial, i))  # only reached after the write

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(report, range(400)))
    committer.close()
    written = {(trial, step) for trial, points in recorder.calls for step, _ in points}
    assert set(acknowledged) == written and len(written) == 400
    assert len(recorder.calls) < 100  # 400 reports, far fewer status writes


def test_a_failed_write_acknowledges_nothing() -> None:
    committer = GroupCommitter(Recorder(fail=True), interval=0.05)
    with pytest.raises(ConnectionError):
        committer.submit("t-0", [(1, {"acc": 0.5})], timeout=5)
    committer.close()


def test_submit_waits_for_the_flush() -> None:
    recorder = Recorder()
    committer = GroupCommitter(recorder, interval=0.3)
    started = time.monotonic()
    committer.submit("t-0", [(1, {"acc": 0.5})])
    assert time.monotonic() - started > 0.05 and recorder.calls == [("t-0", [(1, {"acc": 0.5})])]
    committer.close()


def test_many_trials_stretch_the_interval_instead_of_flooding_the_api() -> None:
    recorder = Recorder()
    committer = GroupCommitter(recorder, interval=0.01, max_writes_per_second=100)

    def report(i: int) -> None:
        committer.submit(f"t-{i % 40}", [(i, {"acc": 0.5})])

    started = time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        list(pool.map(report, range(120)))  # 40 trials, 3 reports each, all at once
    took = time.monotonic() - started
    committer.close()
    writes = len(recorder.calls)
    # every flush of k writes is followed by a pause of k / 100 s: 40+ writes take 0.4+ s
    assert writes >= 40 and took >= (writes - 40) / 100
    assert {step for _, points in recorder.calls for step, _ in points} == set(range(120))
