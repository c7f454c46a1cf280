"""Live feeds for the dashboard: one thread per watched source reads `kubetune.Client` while
someone listens, and pushes what changed to each listener's asyncio queue.

A new listener gets the latest full snapshot first, then only changes, so a page never asks
for the whole job twice. A feed holds one snapshot and stops (dropping it) when its last
listener leaves, so the server's memory follows the jobs people are looking at.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from ..client import Client, ClientError, NotFound
from ._data import importance, job_details, job_payload, job_row, trial_row

Message = tuple[str, dict[str, Any]]  # (event name, data)
QUEUE_LIMIT = 256  # messages waiting for a slow page before it is told to start over
EVENTS_EVERY = 5  # polls between reads of a job's Kubernetes Events, unless its status changed


class Feed:
    """Polls in a thread while it has listeners; `poll` publishes messages."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.lock = threading.Lock()
        self.listeners: set[asyncio.Queue[Message]] = set()
        self.snapshot: Message | None = None
        self.problem: str | None = None
        self.thread: threading.Thread | None = None

    def subscribe(self) -> asyncio.Queue[Message]:
        """A queue of this feed's messages, starting with the current snapshot (call on the
        event loop)."""
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_LIMIT)
        with self.lock:
            self.listeners.add(queue)
            current, problem = self.snapshot, self.problem
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True, name=repr(self))
                self.thread.start()
        if current is not None:
            queue.put_nowait(current)
        if problem is not None:
            queue.put_nowait(("problem", {"message": problem}))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        with self.lock:
            self.listeners.discard(queue)

    def publish(self, event: str, data: dict[str, Any], snapshot: bool = False) -> None:
        """Send a message to every listener; a snapshot also becomes what new listeners get."""
        with self.lock:
            if snapshot:
                self.snapshot = (event, data)
            self.problem = data["message"] if event == "problem" else None
            listeners = list(self.listeners)
        for queue in listeners:
            self.loop.call_soon_threadsafe(_offer, queue, (event, data))

    def poll(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self.listeners:
                    self.thread, self.snapshot, self.problem = None, None, None
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
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def reset(self) -> None:
        """Forget what was sent, so the next successful poll sends a full snapshot."""


def _offer(queue: asyncio.Queue[Message], message: Message) -> None:
    """Queue a message; a page that fell this far behind is told to start over."""
    if queue.full():
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(("resync", {}))
        return
    queue.put_nowait(message)


class JobsFeed(Feed):
    """The jobs page: every job's row, sent again whenever one changes."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        super().__init__(loop, interval)
        self.client = client
        self.rows: list[dict[str, Any]] | None = None

    def poll(self) -> None:
        rows = [job_row(s) for s in self.client.list()]
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
        self.active = True  # trials are read on every poll while any is active

    def __repr__(self) -> str:
        return f"JobFeed({self.name})"

    def poll(self) -> None:
        self.polls += 1
        status = self.client.get(self.name)
        first = self.details is None
        if first or self.spec is None:
            self.spec = self.client.spec(self.name)
        header = job_row(status)
        changed = first or header != {k: (self.details or {}).get(k) for k in header}
        if changed and status.finished:
            self.spec = self.client.spec(self.name)  # an update may have changed the budget
        if changed or self.polls % EVENTS_EVERY == 0:
            self.events = self.client.events(self.name)
        details = job_details(self.spec, status, self.events)
        if first:
            trials = self.client.trials(self.name)
            self.active = status.trials.active or any(not t.finished for t in trials)
            payload = job_payload(self.spec, status, trials, self.events)
            self._remember(details, payload["trials"], payload["importance"])
            self.publish("snapshot", payload, snapshot=True)
            return
        update: dict[str, Any] = {}
        rows = list(self.trials.values())
        ranked = self.ranked
        if changed or self.active:
            trials = self.client.trials(self.name)
            self.active = status.trials.active or any(not t.finished for t in trials)
            rows = [trial_row(t) for t in trials]
            moved = [r for r in rows if self.trials.get(r["name"]) != r]
            if moved:
                update["trials"] = moved
            succeeded = sum(1 for r in rows if r["state"] == "Succeeded")
            if succeeded != self.scored:
                ranked = importance(self.spec, rows)
        if details != self.details:
            update["job"] = details
        if ranked != self.ranked:
            update["importance"] = ranked
        self._remember(details, rows, ranked)
        if update:
            with self.lock:
                self.snapshot = ("snapshot", {"job": details, "trials": rows, "importance": ranked})
            self.publish("update", update)

    def _remember(
        self,
        details: dict[str, Any],
        rows: list[dict[str, Any]],
        ranked: list[dict[str, Any]],
    ) -> None:
        self.details = details
        self.trials = {r["name"]: r for r in rows}
        self.ranked = ranked
        self.scored = sum(r["state"] == "Succeeded" for r in rows)

    def reset(self) -> None:
        self.details, self.trials, self.spec = None, {}, None


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

    def forget_idle(self, keep: Callable[[JobFeed], bool] = lambda f: bool(f.listeners)) -> None:
        """Drop feeds nobody listens to, so a server that saw many jobs stays small."""
        for name, feed in list(self.by_job.items()):
            if not keep(feed) and feed.thread is None:
                del self.by_job[name]
