"""Live feeds for the dashboard: one thread per watched source reads `kubetune.Client` while
someone listens, and pushes what changed to each listener's asyncio queue.

A new listener gets the latest full snapshot first, then only changes, so a page never asks
for the whole job twice. A feed holds one snapshot and stops (dropping it) LINGER seconds after
its last listener leaves, so the server's memory follows the jobs people are looking at, and
going back from a trial to its job is instant. A job that has settled (finished, nothing
active) is read again only when `Client.revision` says it changed; the jobs list of settled jobs
is read every IDLE_INTERVAL seconds instead of every `interval`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..client import Client, ClientError, NotFound
from ._data import importance, job_details, job_row, trial_row


@dataclass(frozen=True)
class Message:
    """One server-sent event: its name and data, serialized once however many pages get it."""

    event: str
    data: dict[str, Any]

    @cached_property
    def text(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), allow_nan=False)


QUEUE_LIMIT = 256  # messages waiting for a slow page before it is told to start over
EVENTS_EVERY = 5  # polls between reads of a job's Kubernetes Events, unless its status changed
LINGER = 30.0  # seconds a feed keeps polling (and its snapshot) after its last listener left
IDLE_INTERVAL = 5.0  # seconds between reads of the jobs list while every job has settled


class Feed:
    """Polls in a thread while it has listeners; `poll` publishes messages."""

    linger = LINGER

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.lock = threading.Lock()
        self.listeners: set[asyncio.Queue[Message]] = set()
        self.snapshot: Message | None = None
        self.problem: str | None = None
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.left_at = time.monotonic()

    def pause(self) -> float:
        """Seconds until the next poll."""
        return self.interval

    def subscribe(self) -> asyncio.Queue[Message]:
        """A queue of this feed's messages, starting with the current snapshot (call on the
        event loop)."""
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_LIMIT)
        with self.lock:
            self.listeners.add(queue)
            current, problem = self.snapshot, self.problem
            if self.thread is None:
                self._start()
            elif current is None:
                self.wake.set()  # no snapshot yet (a problem, or a poll under way): poll now
        if current is not None:
            queue.put_nowait(current)
        if problem is not None:
            queue.put_nowait(Message("problem", {"message": problem}))
        return queue

    def touch(self) -> None:
        """Start reading now, for a page that is about to subscribe (it lingers if none does)."""
        with self.lock:
            self.left_at = time.monotonic()
            if self.thread is None:
                self._start()

    def _start(self) -> None:
        """Start the polling thread (with the lock held)."""
        self.thread = threading.Thread(target=self._run, daemon=True, name=repr(self))
        self.thread.start()

    def names(self) -> set[str] | None:
        """The trials of the current snapshot, or None without one."""
        with self.lock:
            current = self.snapshot
        if current is None or current.event != "snapshot":
            return None
        return {t["name"] for t in current.data["trials"]}

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        with self.lock:
            self.listeners.discard(queue)
            if not self.listeners:
                self.left_at = time.monotonic()

    def publish(self, event: str, data: dict[str, Any], snapshot: bool = False) -> None:
        """Send a message to every listener; a snapshot also becomes what new listeners get."""
        message = Message(event, data)
        message.text  # serialized here, off the event loop  # noqa: B018
        with self.lock:
            if snapshot:
                self.snapshot = message
            self.problem = data["message"] if event == "problem" else None
            listeners = list(self.listeners)
        for queue in listeners:
            try:
                self.loop.call_soon_threadsafe(_offer, queue, message)
            except RuntimeError:  # the event loop has closed: the server is shutting down
                return

    def poll(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self.listeners and time.monotonic() - self.left_at > self.linger:
                    self.thread, self.snapshot, self.problem = None, None, None
                    self.reset()
                    return
            started = time.monotonic()
            try:
                self.poll()
            except NotFound as exc:
                self.publish("gone", {"message": str(exc)})
                self.reset()
            except ClientError as exc:
                self.publish("problem", {"message": str(exc)})
                self.reset()
            except Exception as exc:  # a bug must not end the feed silently
                self.publish("problem", {"message": f"{type(exc).__name__}: {exc}"})
                self.reset()
            self.wake.wait(max(0.0, self.pause() - (time.monotonic() - started)))
            self.wake.clear()

    def reset(self) -> None:
        """Forget what was sent, so the next successful poll sends a full snapshot."""


def _offer(queue: asyncio.Queue[Message], message: Message) -> None:
    """Queue a message; a page that fell this far behind is told to start over."""
    if queue.full():
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(Message("resync", {}))
        return
    queue.put_nowait(message)


class JobsFeed(Feed):
    """The jobs page: every job's row, sent again whenever one changes."""

    linger = 0.0  # reading every job is not worth keeping up for a page that may come back

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        super().__init__(loop, interval)
        self.client = client
        self.rows: list[dict[str, Any]] | None = None
        self.active = True

    def pause(self) -> float:
        return self.interval if self.active else max(self.interval, IDLE_INTERVAL)

    def poll(self) -> None:
        jobs = self.client.list()
        self.active = not all(s.settled for s in jobs)
        rows = [job_row(s) for s in jobs]
        if rows != self.rows or self.problem is not None:
            self.rows = rows
            self.publish("jobs", {"jobs": rows}, snapshot=True)

    def reset(self) -> None:
        self.rows = None


class JobFeed(Feed):
    """One job: a full snapshot first, then its header and the trials that changed."""

    def __init__(
        self, client: Client, name: str, loop: asyncio.AbstractEventLoop, interval: float
    ) -> None:
        super().__init__(loop, interval)
        self.client = client
        self.name = name
        self.details: dict[str, Any] | None = None
        self.trials: dict[str, dict[str, Any]] = {}
        self.ranked: list[dict[str, Any]] = []
        self.scored = -1  # succeeded trials the importance was computed from
        self.polls = 0
        self.spec: Any = None
        self.events: list[Any] = []
        self.active = True  # read on every poll while active; once settled, when it changed
        self.revision: str | None = None

    def __repr__(self) -> str:
        return f"JobFeed({self.name})"

    def poll(self) -> None:
        self.polls += 1
        busy = self.active and self.details is not None  # read in full on every poll anyway
        revision = None if busy else self.client.revision(self.name)
        if revision is not None and revision == self.revision:
            if self.scored < 0:  # settled and unchanged: only the importance is still to come
                self._rank(list(self.trials.values()))
            return
        self.revision = revision
        status, trials = self.client.view(self.name)
        first = self.details is None
        header = job_row(status)
        changed = first or header != {k: (self.details or {}).get(k) for k in header}
        if first or (changed and status.finished):
            self.spec = self.client.spec(self.name)  # an update may have changed the budget
        if changed or self.polls % EVENTS_EVERY == 0:
            self.events = self.client.events(self.name)
        self.active = not status.settled or any(not t.finished for t in trials)
        details = job_details(self.spec, status, self.events)
        rows = [trial_row(t) for t in trials]
        if first:  # the page can draw now; the importance follows on the next poll
            self._remember(details, rows)
            self.publish("snapshot", {"job": details, "trials": rows, "importance": []}, True)
            return
        update: dict[str, Any] = {}
        moved = [r for r in rows if self.trials.get(r["name"]) != r]
        if moved:
            update["trials"] = moved
        if details != self.details:
            update["job"] = details
        self._remember(details, rows)
        if update:
            self.publish("update", update)
        self._rank(rows)

    def _rank(self, rows: list[dict[str, Any]]) -> None:
        """The parameters' importance again, once more trials have succeeded."""
        succeeded = sum(1 for r in rows if r["state"] == "Succeeded")
        if succeeded == self.scored:
            return
        self.scored = succeeded
        ranked = importance(self.spec, rows)
        if ranked != self.ranked:
            self.ranked = ranked
            self.publish("update", {"importance": ranked})

    def publish(self, event: str, data: dict[str, Any], snapshot: bool = False) -> None:
        if event == "update":  # what a page joining now gets instead
            full = {
                "job": self.details,
                "trials": list(self.trials.values()),
                "importance": self.ranked,
            }
            with self.lock:
                self.snapshot = Message("snapshot", full)  # serialized when a page joins
        super().publish(event, data, snapshot)

    def _remember(self, details: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        self.details = details
        self.trials = {r["name"]: r for r in rows}

    def reset(self) -> None:
        self.details, self.trials, self.spec, self.revision = None, {}, None, None
        self.active, self.scored, self.ranked = True, -1, []


class Feeds:
    """The feeds of one server: the jobs list and one per watched job."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.client = client
        self.loop = loop
        self.interval = interval
        self.jobs = JobsFeed(client, loop, interval)
        self.by_job: dict[str, JobFeed] = {}

    def job(self, name: str) -> JobFeed:
        """The feed of job `name` (made on first use; it idles without listeners)."""
        feed = self.by_job.get(name)
        if feed is None:
            feed = self.by_job[name] = JobFeed(self.client, name, self.loop, self.interval)
        return feed

    def forget_idle(self) -> None:
        """Drop feeds that have stopped, so a server that saw many jobs stays small."""
        for name, feed in list(self.by_job.items()):
            if not feed.listeners and feed.thread is None:
                del self.by_job[name]
