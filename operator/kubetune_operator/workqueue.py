"""A work queue of job keys, as in controller-runtime: deduplicated, one worker per key at once.

A key added while it is being processed is processed again afterwards, so no change is missed;
a key added many times while waiting is processed once. `add(key, delay)` re-queues later
(backoff). Keys are handed out in the order they first became due.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable


class WorkQueue:
    """`waited(seconds)` hears how long each key waited from being queued to being handed out."""

    def __init__(self, waited: Callable[[float], None] = lambda _: None) -> None:
        self.waited = waited
        self._since: dict[Hashable, float] = {}
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._waiting: set[Hashable] = set()  # queued, not yet handed out
        self._active: set[Hashable] = set()  # handed out, not yet done
        self._again: set[Hashable] = set()  # added while active
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}

    def add(self, key: Hashable, delay: float = 0.0) -> None:
        if delay > 0:
            if key not in self._timers:
                loop = asyncio.get_running_loop()
                self._timers[key] = loop.call_later(delay, self._due, key)
            return
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._since[key] = time.monotonic()
            self._queue.put_nowait(key)

    def _due(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._waiting.discard(key)
        self.waited(time.monotonic() - self._since.pop(key, time.monotonic()))
        self._active.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def depth(self) -> int:
        """Keys waiting to be handed out."""
        return len(self._waiting)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
