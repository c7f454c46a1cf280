"""The stdout collector on a cluster: follow each trial pod's log through the API server.

No sidecar, no webhook, no rewritten command: the user's image runs as written, and the operator
reads `pods/log?follow=true&timestamps=true` with the official client, one stream per running
trial (a thread blocked on its socket, with a small stack). Every line goes through
`kubetune.collect.LineReader`, and each read's points go to the intake in one batch, as a gRPC
report does.

A stream that drops while its container runs (an API server restart, a network blip) is opened
again with `sinceSeconds` reaching back past the last line taken, and the lines up to that one
(by timestamp, and by count among lines of the same timestamp) are skipped: no line is lost or
taken twice. A stream ends for good once the container has ended (`ended(key)`), and only then is
the trial `settled`: the controller records a stdout-collected trial's result only after its last
lines are stored.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubetune.collect import LineReader, LineSplitter
from kubetune.rpc.metrics import Point, TrialEnded, UnknownTrial

STACK = 256 * 1024  # bytes of stack per stream thread: it only parses lines
RETRY = (0.2, 5.0)  # first and longest wait before opening a dropped stream again
SETTLE_LIMIT = 30.0  # seconds the controller waits for an ended trial's last lines at most
log = logging.getLogger("kubetune.operator.logs")


@dataclass(frozen=True)
class LogTarget:
    namespace: str
    pod: str
    container: str
    reader: Callable[[], LineReader]  # a fresh reader for this pod's lines


Deliver = Callable[[Hashable, list[Point]], object]


class _Stream:
    def __init__(
        self, follower: LogFollower, group: Hashable, key: Hashable, target: LogTarget
    ) -> None:
        self.follower, self.group, self.key, self.target = follower, group, key, target
        self.reader = target.reader()
        self.last_stamp = ""  # the timestamp of the last line taken
        self.taken = 0  # lines taken with that timestamp
        self.replay = 0  # of those, the ones this stream serves again (skipped)
        self.seen = 0  # lines of that timestamp this stream has served
        self.stopped = threading.Event()
        self.settled = threading.Event()
        self.response: Any = None
        self.last_error = ""  # why the stream last failed (for diagnosis)
        self.ended_at: float | None = None  # when the controller first asked, once ended
        self.thread = threading.Thread(target=self._run, name=f"log {target.pod}", daemon=True)

    def _run(self) -> None:
        delay = RETRY[0]
        while not self.stopped.is_set():
            try:
                self._follow()
                delay = RETRY[0]
            except Exception as exc:  # the API server away, a 404 while the pod starts...
                log.debug("log of %s: %s", self.target.pod, exc)
                said = getattr(exc, "body", None) or exc
                self.last_error = f"{type(exc).__name__}: {said!s}"[:300]
            if self.stopped.is_set():
                break
            if self.follower.ended(self.key, self.target.pod):
                break
            self.stopped.wait(delay)
            delay = min(delay * 2, RETRY[1])
        self.settled.set()
        try:
            self.follower.wake(self.key)
        except Exception as exc:  # the trial, or the operator's loop, is gone
            log.debug("waking the job of %s: %s", self.key, exc)

    def _follow(self) -> None:
        since = None
        if self.last_stamp:
            age = (datetime.now(UTC) - _parse(self.last_stamp)).total_seconds()
            since = max(1, math.ceil(age) + 1)
        api = client.CoreV1Api(self.follower.api)
        self.response = api.read_namespaced_pod_log(
            self.target.pod,
            self.target.namespace,
            container=self.target.container,
            follow=True,
            timestamps=True,
            since_seconds=since,
            _preload_content=False,
        )
        self.replay, self.seen = self.taken, 0
        splitter = LineSplitter()
        try:
            for chunk in self.response.stream(16 * 1024):
                if self.stopped.is_set():
                    return
                points = [p for line in splitter.feed(chunk) if (p := self._take(line))]
                if points:
                    self.follower.deliver_points(self.key, points, self.stopped)
        finally:
            self.response.release_conn()

    def _take(self, line: bytes) -> Point | None:
        """The point on a line, unless a stream before this one took the line already."""
        stamp_bytes, _, text = line.partition(b" ")
        stamp = stamp_bytes.decode("ascii", "replace")
        if stamp < self.last_stamp:
            return None
        if stamp == self.last_stamp:
            self.seen += 1
            if self.seen <= self.replay:
                return None
            self.taken += 1
        else:
            self.last_stamp, self.taken, self.replay, self.seen = stamp, 1, 0, 1
        return self.reader.read(text)

    def stop(self) -> None:
        self.stopped.set()
        response = self.response
        if response is not None:
            with contextlib.suppress(Exception):  # closing what is already closed
                response.shutdown()  # unblocks the read


class LogFollower:
    """Streams by key (a trial); `deliver(key, points)` stores a batch, `ended(key, pod)` says
    whether the pod's container has ended, `wake(key)` tells the controller a stream settled."""

    def __init__(
        self,
        api: client.ApiClient,
        deliver: Deliver,
        ended: Callable[[Hashable, str], bool],
        wake: Callable[[Hashable], None] = lambda _: None,
    ) -> None:
        self.api, self.deliver, self.ended, self.wake = api, deliver, ended, wake
        self._streams: dict[Hashable, _Stream] = {}
        self._lock = threading.Lock()
        self.delivered = 0  # points stored (for tests and benchmarks)

    def set_targets(self, group: Hashable, targets: dict[Hashable, LogTarget]) -> None:
        """The streams of one job from now on: `targets` are followed (a new pod of a trial
        gets a new stream), the job's other streams stop."""
        started: list[_Stream] = []
        stopped: list[_Stream] = []
        with self._lock:
            for key in [k for k, s in self._streams.items() if s.group == group]:
                if key not in targets:
                    stopped.append(self._streams.pop(key))
            for key, target in targets.items():
                stream = self._streams.get(key)
                if stream is not None and stream.target.pod == target.pod:
                    continue
                if stream is not None:
                    stopped.append(stream)
                stream = _Stream(self, group, key, target)
                self._streams[key] = stream
                started.append(stream)
        for stream in stopped:
            stream.stop()
        previous = threading.stack_size(STACK)
        try:
            for stream in started:
                stream.thread.start()
        finally:
            threading.stack_size(previous)

    def settled(self, key: Hashable) -> bool:
        """Whether a trial's last lines are stored: its stream ended with its container (or it
        has none, or SETTLE_LIMIT passed since first asked)."""
        with self._lock:
            stream = self._streams.get(key)
        if stream is None or stream.settled.is_set():
            return True
        now = time.monotonic()
        if stream.ended_at is None:
            stream.ended_at = now
        return now - stream.ended_at > SETTLE_LIMIT

    def problems(self) -> dict[str, int]:
        """How many streams last failed for each reason."""
        with self._lock:
            errors = [s.last_error for s in self._streams.values() if s.last_error]
        return {e: errors.count(e) for e in set(errors)}

    def streams(self) -> int:
        with self._lock:
            return sum(1 for s in self._streams.values() if not s.settled.is_set())

    def deliver_points(self, key: Hashable, points: list[Point], stopped: threading.Event) -> None:
        """Store a batch; while the storage is away (the API server restarting: the intake
        stored nothing), try again, so that no line read is lost. A trial that has ended or is
        gone takes no more points."""
        delay = RETRY[0]
        while True:
            try:
                self.deliver(key, points)
                self.delivered += len(points)
                return
            except (UnknownTrial, TrialEnded) as exc:
                log.debug("metrics of %s not taken: %s", key, exc)
                return
            except Exception as exc:  # NotReady, the API server away...
                log.info("metrics of %s not stored yet (%s); again in %.1f s", key, exc, delay)
            if stopped.wait(delay):
                return
            delay = min(delay * 2, RETRY[1])

    def close(self) -> None:
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.stop()
        for stream in streams:
            stream.thread.join(2)


def _parse(stamp: str) -> datetime:
    text = stamp.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
