"""`kubetune.report(...)` and `kubetune.trial_params()`: the API training code calls.

With `KUBETUNE_METRICS_ADDR` set (kubetune started this process), reports go to the
MetricsService over gRPC; the reply says whether to stop. If the service is briefly unreachable,
reports are retried with backoff, then buffered and delivered (in order) with the next report or
at exit, so training never crashes for it. Without the variable, reports are just printed, so the
same script runs by hand.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import sys
import threading
import time
from collections import deque
from typing import Any

RETRY_SECONDS = float(os.environ.get("KUBETUNE_REPORT_RETRY_SECONDS", "5"))
EXIT_FLUSH_SECONDS = float(os.environ.get("KUBETUNE_REPORT_EXIT_SECONDS", "30"))


class _Reporter:
    """One process's connection to the MetricsService, with an ordered buffer of reports."""

    def __init__(self, address: str, trial: str, token: str) -> None:
        import grpc

        from .rpc import kubetune_pb2 as pb
        from .rpc import kubetune_pb2_grpc as pb_grpc

        self._grpc = grpc
        self._pb = pb
        self.trial, self.token = trial, token
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self.closed = False
        self.stub = pb_grpc.MetricsServiceStub(self.channel)
        self.pending: deque[Any] = deque()
        self.stop_requested = False
        self.lock = threading.Lock()

    def report(self, step: int, metrics: dict[str, float]) -> bool:
        request = self._pb.ReportRequest(
            trial=self.trial, token=self.token.encode("utf-8", "surrogateescape"), step=step
        )
        for name, value in metrics.items():
            request.metrics[name] = float(value)
        with self.lock:
            self.pending.append(request)
            self._flush(RETRY_SECONDS)
            return self.stop_requested

    def _flush(self, budget: float) -> None:
        deadline = time.monotonic() + budget
        delay = 0.05
        while self.pending:
            try:
                reply = self.stub.Report(
                    self.pending[0],
                    timeout=max(0.2, min(5.0, deadline - time.monotonic())),
                    wait_for_ready=True,
                )
            except self._grpc.RpcError as exc:
                code = exc.code()
                if code in (
                    self._grpc.StatusCode.UNAVAILABLE,
                    self._grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    if time.monotonic() + delay >= deadline:
                        _log(f"metrics service unreachable; {len(self.pending)} report(s) buffered")
                        return
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                _log(f"report rejected ({code.name}): {exc.details()}")
                self.pending.popleft()
                continue
            self.pending.popleft()
            if reply.should_stop:
                self.stop_requested = True

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.pending:
                self._flush(EXIT_FLUSH_SECONDS)
            self.channel.close()


_reporter: _Reporter | None = None
_reporter_lock = threading.Lock()


def _get_reporter() -> _Reporter | None:
    global _reporter
    address = os.environ.get("KUBETUNE_METRICS_ADDR")
    if not address:
        return None
    with _reporter_lock:
        if _reporter is None:
            _reporter = _Reporter(
                address,
                os.environ.get("KUBETUNE_TRIAL", ""),
                os.environ.get("KUBETUNE_TRIAL_TOKEN", ""),
            )
            atexit.register(_reporter.close)
        return _reporter


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
                value = float(value)  # numpy and torch scalars
            except (TypeError, ValueError):
                raise ValueError(f"{name}: must be a number (got {value!r})") from None
        clean[name] = float(value)
    reporter = _get_reporter()
    if reporter is None:
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in clean.items())
        _log(f"step {step}: {shown}")
        return False
    return reporter.report(step, clean)


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
