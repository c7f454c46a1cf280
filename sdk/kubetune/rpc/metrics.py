"""MetricsService: training code reports metrics; the reply says whether to stop.

Reports come one per call (`Report`) or batched per trial (`ReportBatch`, what `kubetune.report`
uses); both take the same path. The servicer checks the request's bounds and hands the points to
a `MetricsBackend` (both drivers use `kubetune.intake.MetricsIntake`, over their own store),
which persists them in one write before the reply goes out: an acknowledged report is never lost. A
batch's reply says what became of each point, carries the stop verdict, and names the next step
the stopping rule judges, so the client knows when to wait for a verdict. Non-finite values, and values beyond
±MAX_ABS_VALUE (whose arithmetic would overflow), are recorded as failed measurements and never
reach the search or the stopping rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Point:
    """One report of a batch: usable `metrics`, and the names of unusable ones in `invalid`."""

    step: int
    metrics: dict[str, float]
    invalid: list[str]


@dataclass(frozen=True)
class BatchVerdict:
    verdict: ReportVerdict
    refused: Mapping[int, Exception] = field(default_factory=dict)  # point index: why not stored
    verdict_step: int | None = None  # next step the stopping rule judges; None: never


class MetricsBackend(Protocol):
    def report_batch(self, trial: str, token: str, points: list[Point]) -> BatchVerdict:
        """Persist a trial's points in one commit, then judge them in order with the stopping
        rule. Raises UnknownTrial, BadToken, TrialEnded (reports are accepted only while the
        trial runs or stops) or NotReady for the whole batch; a point past a per-trial bound
        (LimitExceeded) is refused alone, in `refused`."""
        ...


MAX_POINTS_PER_BATCH = 1_000

_CODES: dict[str, grpc.StatusCode] = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "limit_exceeded": grpc.StatusCode.INVALID_ARGUMENT,
    "bad_token": grpc.StatusCode.UNAUTHENTICATED,
    "unknown_trial": grpc.StatusCode.NOT_FOUND,
    "trial_ended": grpc.StatusCode.FAILED_PRECONDITION,
    "not_ready": grpc.StatusCode.UNAVAILABLE,
}


class MetricsServicer(pb_grpc.MetricsServiceServicer):
    """`observe(result)` hears of every point: accepted, non_finite or a rejection label."""

    def __init__(
        self, backend: MetricsBackend, observe: Callable[[str], None] = lambda _: None
    ) -> None:
        self.backend = backend
        self.observe = observe

    def Report(self, request: pb.ReportRequest, context: Any) -> pb.ReportResponse:
        point = pb.ReportPoint(step=request.step, metrics=request.metrics)
        reply = self._batch(request.trial, request.token, [point])
        result = reply.results[0]
        if result.result in _CODES:
            context.abort(_CODES[result.result], result.message)
        return pb.ReportResponse(should_stop=reply.should_stop, reason=reply.reason)

    def ReportBatch(self, request: pb.ReportBatchRequest, context: Any) -> pb.ReportBatchResponse:
        if len(request.points) > MAX_POINTS_PER_BATCH:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"points: at most {MAX_POINTS_PER_BATCH} per batch (got {len(request.points)})",
            )
        return self._batch(request.trial, request.token, list(request.points))

    def _batch(
        self, trial: str, raw_token: bytes, points: list[pb.ReportPoint]
    ) -> pb.ReportBatchResponse:
        results: list[tuple[str, str] | None] = [None] * len(points)
        valid: list[int] = []
        for i, point in enumerate(points):
            try:
                if not trial:
                    raise LimitExceeded("trial: required")
                check_report(point.step, list(point.metrics))
                valid.append(i)
            except LimitExceeded as exc:
                results[i] = ("invalid_argument", str(exc))
        verdict = BatchVerdict(ReportVerdict(False))
        if valid:
            try:
                verdict = self.backend.report_batch(
                    trial, _decode(trial, raw_token), [_split(points[i]) for i in valid]
                )
            except (UnknownTrial, TrialEnded, NotReady, BadToken) as exc:
                for i in valid:
                    results[i] = (rejection(exc) or "invalid_argument", _message(trial, exc))
            else:
                for j, i in enumerate(valid):
                    if j in verdict.refused:
                        why = verdict.refused[j]
                        results[i] = (rejection(why) or "invalid_argument", str(why))
                    else:
                        bad = any(not usable(v) for v in points[i].metrics.values())
                        results[i] = ("non_finite" if bad else "accepted", "")
        reply = pb.ReportBatchResponse(
            should_stop=verdict.verdict.should_stop,
            reason=verdict.verdict.reason,
            verdict_step=-1 if verdict.verdict_step is None else verdict.verdict_step,
        )
        for point, outcome in zip(points, results, strict=True):
            assert outcome is not None
            self.observe(outcome[0])
            reply.results.add(step=point.step, result=outcome[0], message=outcome[1])
        return reply


def _decode(trial: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadToken(trial) from None


def _split(point: pb.ReportPoint) -> Point:
    finite = {k: v for k, v in point.metrics.items() if usable(v)}
    invalid = sorted(k for k, v in point.metrics.items() if not usable(v))
    return Point(point.step, finite, invalid)


def _message(trial: str, exc: Exception) -> str:
    if isinstance(exc, UnknownTrial):
        return f"trial {trial!r} is not known"
    if isinstance(exc, BadToken):
        return f"wrong token for trial {trial!r}"
    if isinstance(exc, NotReady):
        return f"not ready, retry: {exc}"
    return str(exc)
