"""Group commit of metric reports: few API writes, and no acknowledged report ever lost.

Many reports per second must not become many Trial-status writes, yet a report may only be
acknowledged once it is stored. `GroupCommitter.submit` therefore blocks until the batch holding
its report has been written: a flusher thread collects everything submitted during one interval
and hands each trial's new points to `write(trial, points)` in one call. If the write fails, every
report of that batch gets the exception (so the client retries) and nothing is acknowledged.

The writes of all trials together stay within `max_writes_per_second`: after a flush of k
writes the next one waits at least k / max_writes_per_second, so 2,000 trials reporting at once
stretch the interval rather than flood the API server (whose flow control would answer 429).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

CommitPoint = tuple[int, dict[str, float]]


@dataclass
class _Pending:
    points: list[CommitPoint]
    futures: list[Future[None]]


class GroupCommitter:
    def __init__(
        self,
        write: Callable[[str, list[CommitPoint]], None],
        interval: float = 0.5,
        max_writes_per_second: float = 200.0,
    ) -> None:
        self.write = write
        self.interval = interval
        self.max_writes_per_second = max_writes_per_second
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = defaultdict(lambda: _Pending([], []))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, trial: str, points: list[CommitPoint], timeout: float = 30.0) -> None:
        """Queue a trial's reports and wait until they are written (raises what the write
        raised). The points of one call always land in the same write."""
        if not points:
            return
        future: Future[None] = Future()
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("group committer is closed")
            batch = self._pending[trial]
            batch.points.extend((step, dict(metrics)) for step, metrics in points)
            batch.futures.append(future)
        future.result(timeout=timeout)

    def flush(self) -> int:
        """Write everything queued so far (the flusher calls this every interval); the number
        of writes."""
        with self._lock:
            batches, self._pending = self._pending, defaultdict(lambda: _Pending([], []))
        for trial, batch in batches.items():
            try:
                self.write(trial, batch.points)
            except Exception as exc:
                for f in batch.futures:
                    f.set_exception(exc)
            else:
                for f in batch.futures:
                    f.set_result(None)
        return len(batches)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        wait = self.interval
        while not self._closed.wait(wait):
            wait = max(self.interval, self.flush() / self.max_writes_per_second)
