"""MetricsService: training code reports metrics; the reply says whether to stop.

The servicer authenticates, validates and hands the report to a `MetricsBackend` (the local
runner's SQLite store, or the operator's Trial-status writer), which persists it before the reply
goes out: an acknowledged report is never lost. Non-finite values, and values beyond
±MAX_ABS_VALUE (whose arithmetic would overflow), are recorded as failed measurements and never
reach the search or the stopping rules.
"""

from __future__ import annotations

import math
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
    def __init__(self, backend: MetricsBackend) -> None:
        self.backend = backend

    def Report(self, request: pb.ReportRequest, context: Any) -> pb.ReportResponse:
        if not request.trial:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "trial: required")
        try:
            check_report(request.step, list(request.metrics))
        except LimitExceeded as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            token = request.token.decode("utf-8")
        except UnicodeDecodeError:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"wrong token for trial {request.trial!r}"
            )
        finite = {k: v for k, v in request.metrics.items() if usable(v)}
        invalid = sorted(k for k, v in request.metrics.items() if not usable(v))
        try:
            verdict = self.backend.report(request.trial, token, request.step, finite, invalid)
        except UnknownTrial:
            context.abort(grpc.StatusCode.NOT_FOUND, f"trial {request.trial!r} is not known")
        except TrialEnded as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except NotReady as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"not ready, retry: {exc}")
        except LimitExceeded as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except BadToken:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"wrong token for trial {request.trial!r}"
            )
        return pb.ReportResponse(should_stop=verdict.should_stop, reason=verdict.reason)
