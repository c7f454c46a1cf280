"""MetricsService: training code reports metrics; the reply says whether to stop.

The servicer authenticates, validates and hands the report to a `MetricsBackend` (the local
runner's SQLite store, or the operator's Trial-status writer), which persists it before the reply
goes out: an acknowledged report is never lost. Non-finite values, and values beyond
±MAX_ABS_VALUE (whose arithmetic would overflow), are recorded as failed measurements and never
reach the search or the stopping rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from . import kubetune_pb2 as pb
from . import kubetune_pb2_grpc as pb_grpc
from .limits import MAX_ABS_VALUE, LimitExceeded, check_report


def usable(value: float) -> bool:
    """Whether a reported value can be used (else it is recorded as a failed measurement)."""
    return math.isfinite(value) and abs(value) <= MAX_ABS_VALUE


class UnknownTrial(LookupError):
    """No trial of that name is known to the backend."""


class BadToken(PermissionError):
    """The trial exists but the token does not match."""


class TrialEnded(RuntimeError):
    """The trial has ended: its reports are no longer accepted."""

    def __init__(self, trial: str, state: str) -> None:
        super().__init__(f"trial {trial!r} has ended ({state}); reports are no longer accepted")


class NotReady(RuntimeError):
    """The backend cannot judge yet (e.g. a restarted operator still listing): retry later."""


def rejection(exc: BaseException) -> str | None:
    """The `kubetune_metric_reports_total` result label of a backend's refusal (None: a bug)."""
    for kind, label in (
        (UnknownTrial, "unknown_trial"),
        (BadToken, "bad_token"),
        (TrialEnded, "trial_ended"),
        (NotReady, "not_ready"),
        (LimitExceeded, "limit_exceeded"),
    ):
        if isinstance(exc, kind):
            return label
    return None


@dataclass(frozen=True)
class ReportVerdict:
    should_stop: bool
    reason: str = ""


class MetricsBackend(Protocol):
    def report(
        self, trial: str, token: str, step: int, metrics: dict[str, float], invalid: list[str]
    ) -> ReportVerdict:
        """Persist one report (finite `metrics`, names of non-finite ones in `invalid`) and decide
        whether the trial should stop. Raises UnknownTrial, BadToken, TrialEnded (reports are
        accepted only while the trial runs or stops), NotReady or LimitExceeded (more distinct
        metric names than a trial may have)."""
        ...


class MetricsServicer(pb_grpc.MetricsServiceServicer):
    """`observe(result)` hears of every report: accepted, non_finite or a rejection label."""

    def __init__(
        self, backend: MetricsBackend, observe: Callable[[str], None] = lambda _: None
    ) -> None:
        self.backend = backend
        self.observe = observe

    def Report(self, request: pb.ReportRequest, context: Any) -> pb.ReportResponse:
        def fail(code: grpc.StatusCode, message: str, result: str) -> None:
            self.observe(result)
            context.abort(code, message)

        if not request.trial:
            fail(grpc.StatusCode.INVALID_ARGUMENT, "trial: required", "invalid_argument")
        try:
            check_report(request.step, list(request.metrics))
        except LimitExceeded as exc:
            fail(grpc.StatusCode.INVALID_ARGUMENT, str(exc), "invalid_argument")
        wrong_token = f"wrong token for trial {request.trial!r}"
        try:
            token = request.token.decode("utf-8")
        except UnicodeDecodeError:
            fail(grpc.StatusCode.UNAUTHENTICATED, wrong_token, "bad_token")
        finite = {k: v for k, v in request.metrics.items() if usable(v)}
        invalid = sorted(k for k, v in request.metrics.items() if not usable(v))
        try:
            verdict = self.backend.report(request.trial, token, request.step, finite, invalid)
        except (UnknownTrial, TrialEnded, NotReady, LimitExceeded, BadToken) as exc:
            answers: list[tuple[type[Exception], grpc.StatusCode, str]] = [
                (UnknownTrial, grpc.StatusCode.NOT_FOUND, f"trial {request.trial!r} is not known"),
                (TrialEnded, grpc.StatusCode.FAILED_PRECONDITION, str(exc)),
                (NotReady, grpc.StatusCode.UNAVAILABLE, f"not ready, retry: {exc}"),
                (LimitExceeded, grpc.StatusCode.INVALID_ARGUMENT, str(exc)),
                (BadToken, grpc.StatusCode.UNAUTHENTICATED, wrong_token),
            ]
            code, message = next((c, m) for k, c, m in answers if isinstance(exc, k))
            fail(code, message, rejection(exc) or "invalid_argument")
        self.observe("non_finite" if invalid else "accepted")
        return pb.ReportResponse(should_stop=verdict.should_stop, reason=verdict.reason)
