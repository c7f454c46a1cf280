"""Follow files as they are written and hand their metric lines on, one batch per read.

One thread polls every followed file; a file that is rotated (renamed away and created anew) is
read to its end and then followed under its name again, a truncated one from its start, a
missing one once it appears. `drain(key)` reads what is there now in the caller's thread and
stops following: a driver calls it when the trial's process has exited, so that the last lines
are stored before its result is. A delivery that fails is logged and the file followed on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import BinaryIO

from ..rpc.metrics import Point
from ._lines import LineReader, LineSplitter

CHUNK = 64 * 1024
MAX_READ = 1024 * 1024  # bytes of one file per poll, so one chatty trial cannot starve others
log = logging.getLogger("kubetune.collect")

Deliver = Callable[[Hashable, list[Point]], object]


class _Followed:
    def __init__(self, path: Path, reader: LineReader, offset: int) -> None:
        self.path, self.reader, self.offset = path, reader, offset
        self.splitter = LineSplitter()
        self.handle: BinaryIO | None = None
        self.done = False  # drained or dropped: never opened again
        self.lock = threading.Lock()

    def read(self, limit: int | None = MAX_READ) -> list[Point]:
        """New points since the last read (at most `limit` bytes of the file; None: all)."""
        with self.lock:
            points: list[Point] = []
            if self.done or (self.handle is None and not self._open()):
                return points
            assert self.handle is not None
            budget = limit
            while budget is None or budget > 0:
                data = self.handle.read(CHUNK if budget is None else min(CHUNK, budget))
                if not data:
                    if self._replaced():
                        continue
                    break
                budget = None if budget is None else budget - len(data)
                points += self._points(data)
            return points

    def final(self) -> list[Point]:
        """Everything left, the last unterminated line included; the file is closed."""
        points = self.read(None)
        with self.lock:
            points += [p for line in self.splitter.flush() if (p := self.reader.read(line))]
            self.close()
        return points

    def close(self) -> None:
        self.done = True
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def _points(self, data: bytes) -> list[Point]:
        return [p for line in self.splitter.feed(data) if (p := self.reader.read(line))]

    def _open(self) -> bool:
        try:
            self.handle = open(self.path, "rb")  # noqa: SIM115 - held while followed
        except OSError:
            return False
        size = os.fstat(self.handle.fileno()).st_size
        self.handle.seek(self.offset if self.offset <= size else 0)
        self.offset = 0  # a file that replaces this one is read from its start
        return True

    def _replaced(self) -> bool:
        """At the end of the open file: whether another file (rotated in) or a truncation
        means there is more to read; if so, the handle is ready for it."""
        assert self.handle is not None
        try:
            now = os.stat(self.path)
        except OSError:
            return False
        held = os.fstat(self.handle.fileno())
        if (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev):
            self.handle.close()
            return self._open()
        if now.st_size < self.handle.tell():
            self.handle.seek(0)
            return True
        return False


class Tailer:
    """Follows files by key (a trial); `deliver(key, points)` gets each batch."""

    def __init__(self, deliver: Deliver, interval: float = 0.1) -> None:
        self.deliver = deliver
        self.interval = interval
        self._files: dict[Hashable, _Followed] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tailer", daemon=True)
        self._thread.start()

    def follow(self, key: Hashable, path: Path, reader: LineReader, offset: int = 0) -> None:
        """Follow `path` from byte `offset` (from its start if it is shorter, or appears
        later), replacing what `key` followed before."""
        with self._lock:
            old = self._files.pop(key, None)
            self._files[key] = _Followed(path, reader, offset)
        if old is not None:
            with old.lock:
                old.close()

    def drain(self, key: Hashable) -> None:
        """Deliver what the file holds now, and stop following it."""
        with self._lock:
            followed = self._files.pop(key, None)
        if followed is not None:
            self._deliver(key, followed.final())

    def following(self) -> list[Hashable]:
        with self._lock:
            return list(self._files)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        with self._lock:
            files, self._files = list(self._files.values()), {}
        for followed in files:
            with followed.lock:
                followed.close()

    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            with self._lock:
                files = list(self._files.items())
            for key, followed in files:
                try:
                    points = followed.read()
                except (OSError, ValueError) as exc:  # closed by drain meanwhile, or gone
                    log.debug("reading %s: %s", followed.path, exc)
                    continue
                self._deliver(key, points)

    def _deliver(self, key: Hashable, points: list[Point]) -> None:
        if not points:
            return
        try:
            self.deliver(key, points)
        except Exception as exc:  # the trial ended meanwhile, a bound, the storage away...
            log.warning("metrics of %s not taken: %s", key, exc)
