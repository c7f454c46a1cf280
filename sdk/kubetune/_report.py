"""`kubetune.report(...)` and `kubetune.trial_params()`: the API training code calls.

With `KUBETUNE_METRICS_ADDR` set (kubetune started this process), reports go to the
MetricsService over gRPC in batches: `report` queues the point and a sender thread ships what
has queued within a few milliseconds (or 256 points) in one `ReportBatch` call. Where the
early-stopping rule will judge a step (the server names the next such step in every reply),
`report` sends at once and waits for the verdict, so stopping is never late. The buffer is
flushed at normal exit, on SIGTERM (unless the program handles SIGTERM itself) and by
`kubetune.flush()` or the end of a `with kubetune.reporting():` block. If the service is briefly
unreachable, points stay buffered and are retried in order; the server stores a step once however
often it is sent. Without the variable, reports are just printed, so the same script runs by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

RETRY_SECONDS = float(os.environ.get("KUBETUNE_REPORT_RETRY_SECONDS", "5"))
EXIT_FLUSH_SECONDS = float(os.environ.get("KUBETUNE_REPORT_EXIT_SECONDS", "30"))
LINGER_SECONDS = float(os.environ.get("KUBETUNE_REPORT_LINGER_MS", "5")) / 1000
SIGTERM_FLUSH_SECONDS = 5.0
BATCH_POINTS = 256
BATCH_BYTES = 128 * 1024  # well under the server's 256 KiB message bound
MAX_BUFFERED = 20_000  # past this, report() waits for the sender (up to RETRY_SECONDS)
DELIVERED = ("accepted", "non_finite")


class _Reporter:
    """One process's connection to the MetricsService: an ordered buffer and a sender thread.

    Buffered entries are (sequence number, point); a point leaves the buffer when the server has
    answered for it, so `_resolved(seq)` means "stored or refused, never to be sent again".
    """

    def __init__(self, address: str, trial: str, token: str) -> None:
        import grpc

        from .rpc import kubetune_pb2 as pb
        from .rpc import kubetune_pb2_grpc as pb_grpc

        self._grpc, self._pb = grpc, pb
        self.pid = os.getpid()
        self.trial, self.token = trial, token.encode("utf-8", "surrogateescape")
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self.stub = pb_grpc.MetricsServiceStub(self.channel)
        self.cond = threading.Condition()
        self.buffer: list[tuple[int, Any]] = []
        self.sequence = 0
        self.oldest = 0.0  # when the buffer last went from empty to not
        self.urgent_through = 0  # points up to this sequence number go out without lingering
        self.closing = False
        self.stopped = False
        self.stop_requested = False
        self.verdict_step: int | None = 0  # until the first reply, every report waits
        self.unreachable = False
        self.acknowledged: int | None = None  # the highest step the service has stored
        self.sender = threading.Thread(
            target=self._send_forever, name="kubetune-report", daemon=True
        )
        self.sender.start()

    # -- called by training code -----------------------------------------------------------
    def report(self, step: int, metrics: dict[str, float]) -> bool:
        point = self._pb.ReportPoint(step=step, metrics=metrics)
        with self.cond:
            if len(self.buffer) >= MAX_BUFFERED:
                self.cond.wait_for(lambda: len(self.buffer) < MAX_BUFFERED, RETRY_SECONDS)
            self.sequence += 1
            if not self.buffer:
                self.oldest = time.monotonic()
            self.buffer.append((self.sequence, point))
            judged = self.verdict_step is not None and step >= self.verdict_step
            if judged:
                self.urgent_through = self.sequence
            self.cond.notify_all()
            if judged and not self.unreachable:  # in an outage, wait once, not at every step
                self._wait(self.sequence, RETRY_SECONDS)
            return self.stop_requested

    def flush(self, timeout: float) -> bool:
        """Send everything queued so far and wait for the answers (at most `timeout` s)."""
        with self.cond:
            if self.buffer:
                self.urgent_through = self.sequence
                self.cond.notify_all()
                self._wait(self.sequence, timeout)
            return self.stop_requested

    def close(self, timeout: float = EXIT_FLUSH_SECONDS) -> None:
        with self.cond:
            if self.stopped:
                return
            self.closing = True
            self.cond.notify_all()
            self._wait(self.sequence, timeout)
            left = len(self.buffer)
            self.stopped = True
            self.cond.notify_all()
        if left:
            _log(f"{left} report(s) could not be delivered before exit")
        self.sender.join(timeout=1.0)
        self.channel.close()

    def _wait(self, seq: int, timeout: float) -> None:
        self.cond.wait_for(lambda: not self.buffer or self.buffer[0][0] > seq, timeout)

    # -- the sender thread -----------------------------------------------------------------
    def _send_forever(self) -> None:
        delay = 0.05
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                retry = self._send(batch)
            except Exception as exc:  # never let the sender die: training must go on
                retry = True
                if not self.unreachable:
                    _log(f"metrics service unreachable ({exc.__class__.__name__}); buffering")
                self.unreachable = True
            if retry:
                with self.cond:
                    self.cond.wait_for(lambda: self.stopped, delay)
                delay = min(delay * 2, 1.0)
            else:
                delay = 0.05

    def _next_batch(self) -> list[tuple[int, Any]] | None:
        with self.cond:
            while True:
                if self.stopped:
                    return None
                if self.buffer:
                    urgent = self.buffer[0][0] <= self.urgent_through
                    if urgent or self.closing or len(self.buffer) >= BATCH_POINTS:
                        break
                    left = self.oldest + LINGER_SECONDS - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                else:
                    self.cond.wait()
            batch: list[tuple[int, Any]] = []
            size = 0
            for entry in self.buffer[:BATCH_POINTS]:
                size += entry[1].ByteSize() + 8
                if batch and size > BATCH_BYTES:
                    break
                batch.append(entry)
            return batch

    def _send(self, batch: list[tuple[int, Any]]) -> bool:
        """Send one batch; True when (some of) it must be retried."""
        grpc = self._grpc
        request = self._pb.ReportBatchRequest(
            trial=self.trial, token=self.token, points=[p for _, p in batch]
        )
        try:
            reply = self.stub.ReportBatch(request, timeout=10.0, wait_for_ready=True)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                if not self.unreachable:
                    _log(f"metrics service unreachable; {len(self.buffer)} report(s) buffered")
                self.unreachable = True
                return True
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:  # an older server: a call per point
                return self._send_each(batch)
            _log(f"reports rejected ({exc.code().name}): {exc.details()}")
            self._settle(batch, [], self.verdict_step, False)
            return False
        self.unreachable = False
        retry: list[tuple[int, Any]] = []
        refused: dict[str, tuple[int, str]] = {}
        for entry, result in zip(batch, reply.results, strict=True):
            if result.result in DELIVERED:
                self.acknowledged = max(self.acknowledged or 0, entry[1].step)
            if result.result == "not_ready":
                retry.append(entry)
            elif result.result not in DELIVERED:
                refused.setdefault(result.result, (0, result.message))
                count, message = refused[result.result]
                refused[result.result] = (count + 1, message)
        for label, (count, message) in refused.items():
            _log(f"{count} report(s) rejected ({label}): {message}")
        step = None if reply.verdict_step < 0 else reply.verdict_step
        self._settle(batch, retry, step, reply.should_stop)
        return bool(retry)

    def _send_each(self, batch: list[tuple[int, Any]]) -> bool:
        stop = False
        for _, point in batch:
            request = self._pb.ReportRequest(
                trial=self.trial, token=self.token, step=point.step, metrics=point.metrics
            )
            try:
                stop = self.stub.Report(request, timeout=10.0, wait_for_ready=True).should_stop
            except self._grpc.RpcError as exc:
                _log(f"report rejected ({exc.code().name}): {exc.details()}")
        self._settle(batch, [], 0, stop)  # no verdict step from an older server: always wait
        return False

    def _settle(
        self,
        batch: list[tuple[int, Any]],
        retry: list[tuple[int, Any]],
        step: int | None,
        stop: bool,
    ) -> None:
        """Drop the answered points from the head of the buffer, keeping `retry` first."""
        with self.cond:
            self.buffer[: len(batch)] = retry
            self.verdict_step = step if not stop else None
            self.stop_requested = self.stop_requested or stop
            # a point queued meanwhile at or past the new verdict step goes out at once, and so
            # does everything before it (steps mostly grow: the last point is the one to check)
            if step is not None and self.buffer and self.buffer[-1][1].step >= step:
                self.urgent_through = max(self.urgent_through, self.buffer[-1][0])
            self.cond.notify_all()


_reporter: _Reporter | None = None
_reporter_lock = threading.Lock()


def _get_reporter() -> _Reporter | None:
    global _reporter
    address = os.environ.get("KUBETUNE_METRICS_ADDR")
    if not address:
        return None
    with _reporter_lock:
        if _reporter is None or _reporter.pid != os.getpid():  # a forked child starts afresh
            _reporter = _Reporter(
                address,
                os.environ.get("KUBETUNE_TRIAL", ""),
                os.environ.get("KUBETUNE_TRIAL_TOKEN", ""),
            )
            atexit.register(_reporter.close)
            _flush_on_sigterm(_reporter)
        return _reporter


def _flush_on_sigterm(reporter: _Reporter) -> None:
    """On SIGTERM, deliver the buffer, then die of SIGTERM as before. Only where the program
    kept the default action: a handler of its own runs instead (and its exit flushes)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        reporter.close(SIGTERM_FLUSH_SECONDS)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def as_float(value: Any) -> float:
    """A numpy or torch scalar as a float; a 32-bit one as the shortest decimal that is the same
    float32 (0.98, not 0.9800000190734863), as numpy prints it."""
    number = float(value)
    dtype = str(getattr(value, "dtype", "")).rpartition(".")[2]  # "torch.float32" too
    if dtype != "float32" or not math.isfinite(number):
        return number
    exact = struct.pack("<f", number)
    for digits in range(1, 10):
        short = float(f"{number:.{digits}g}")
        if struct.pack("<f", short) == exact:
            return short
    return number


def report(step: int, **metrics: float) -> bool:
    """Report metrics at `step`; return True when kubetune wants this trial to stop.

    Values must be numbers; NaN or infinite values are recorded as failed measurements.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: must be a non-negative integer (got {step!r})")
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = as_float(value)  # numpy and torch scalars
            except (TypeError, ValueError):
                raise ValueError(f"{name}: must be a number (got {value!r})") from None
        clean[name] = float(value)
    reporter = _get_reporter()
    if reporter is None:
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in clean.items())
        _log(f"step {step}: {shown}")
        return False
    return reporter.report(step, clean)


def flush(timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    """Deliver every report made so far (waiting at most `timeout` s); True when kubetune wants
    this trial to stop."""
    reporter = _get_reporter()
    return reporter.flush(timeout) if reporter is not None else False


@contextlib.contextmanager
def reporting(timeout: float = EXIT_FLUSH_SECONDS) -> Iterator[None]:
    """`with kubetune.reporting():` flushes the reports made inside when the block ends,
    however it ends."""
    try:
        yield
    finally:
        flush(timeout)


def acknowledged_step() -> int | None:
    """The highest step of this process's reports that kubetune has stored, if any."""
    reporter = _reporter
    if reporter is None or reporter.pid != os.getpid():
        return None
    return reporter.acknowledged


def trial_params() -> dict[str, Any]:
    """This trial's parameters (from KUBETUNE_PARAMS); empty outside kubetune."""
    raw = os.environ.get("KUBETUNE_PARAMS")
    if not raw:
        return {}
    params: dict[str, Any] = json.loads(raw)
    return params


def _fmt(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def _log(message: str) -> None:
    print(f"[kubetune] {message}", file=sys.stderr, flush=True)
