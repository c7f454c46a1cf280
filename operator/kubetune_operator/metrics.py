"""The operator's MetricsBackend: reports become Trial status, then early stopping judges them.

Status stays small: a trial has at most MAX_NAMES_PER_TRIAL metric names (more is
INVALID_ARGUMENT) and its curve is compacted to CURVE_LIMIT points that keep what the stopping
rules and the objective need (`kubetune.stopping.compact_curve`).

A report is acknowledged only after the Trial status holding it has been written (group commit:
all reports of one interval for a trial become one status patch), so an operator killed at any
moment loses no acknowledged metric; a restarted one reloads the curves from the Trials. When the
stopping rule rejects a trial, its status says Stopped before the reply tells the trainer to stop,
and the job is woken to delete the pod. A write that fails because the API server or etcd is
away answers NOT_READY, so the trainer keeps the points and sends them again. Reports for a trial that has ended (or whose pod is
gone after a stop) get FAILED_PRECONDITION: a stray child process cannot change a finished result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import urllib3
from kubetune.rpc.limits import LimitExceeded, check_trial_names
from kubetune.rpc.metrics import (
    BadToken,
    BatchVerdict,
    NotReady,
    Point,
    ReportVerdict,
    TrialEnded,
    UnknownTrial,
)
from kubetune.rpc.tokens import matches_digest
from kubetune.spec import SpecError, TuningJobSpec
from kubetune.stopping import BaseStopper, compact_curve, create_stopper, judge_batch
from kubetune.telemetry import Telemetry

from .builders import TOKEN_DIGEST_ANNOTATION, job_spec
from .cache import Cache, Key
from .controller import now
from .group_commit import CommitPoint, GroupCommitter
from .kube import TRANSIENT, KubeError
from .status import build_metrics_status, stored_curve


class TrialStatusMetrics:
    def __init__(
        self,
        cache: Cache,
        run: Callable[[Coroutine[Any, Any, Any]], Any],
        patch_status: Callable[[str, str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]],
        wake: Callable[[Key], None],
        interval: float = 0.5,
        ready: Callable[[], bool] = lambda: True,
        telemetry: Telemetry | None = None,
        max_writes_per_second: float = 200.0,
    ) -> None:
        self.telemetry = telemetry
        self.cache = cache
        self.ready = ready  # false until kopf has listed every Trial and TuningJob
        self.run = run  # runs a coroutine on the operator's loop and returns its result
        self.patch_status = patch_status
        self.wake = wake
        self.curves: dict[Key, dict[int, float]] = {}
        self.latest: dict[Key, dict[str, float]] = {}
        self.names: dict[Key, set[str]] = {}  # distinct metric names per trial, bounded
        self.lock = threading.Lock()
        self._stoppers: dict[Key, tuple[TuningJobSpec, BaseStopper]] = {}  # per job, its spec's
        self.committer = GroupCommitter(self._write, interval, max_writes_per_second)

    def close(self) -> None:
        self.committer.close()

    def report_batch(self, trial: str, token: str, points: list[Point]) -> BatchVerdict:
        if not self.ready():  # "unknown" now may only mean "not listed yet": never drop a report
            raise NotReady("the operator is starting")
        return self._accept(self._authenticate(trial, token), points)

    def accept(
        self, key: Key, step: int, metrics: dict[str, float], invalid: list[str]
    ) -> ReportVerdict:
        """A report scraped by the operator itself (no token: it comes from the pod's IP)."""
        if not self.ready():
            raise NotReady("the operator is starting")
        body = self.cache.get("trials", key)
        if body is None:
            raise UnknownTrial(key[1])
        result = self._accept(body, [Point(step, metrics, invalid)])
        if result.refused:
            raise result.refused[0]
        return result.verdict

    def _accept(self, body: dict[str, Any], points: list[Point]) -> BatchVerdict:
        trial = body["metadata"]["name"]
        ns = body["metadata"].get("namespace", "default")
        job: Key = (ns, body["spec"]["job"])
        found = self._job(job)
        if found is None:
            raise UnknownTrial(trial)
        spec, stopper = found
        phase = (body.get("status") or {}).get("phase")
        if not self._reporting(ns, trial, phase):
            raise TrialEnded(trial, phase or "Unknown")
        refused: dict[int, Exception] = {}
        kept: list[tuple[int, dict[str, float]]] = []
        with self.lock:
            names = self.names.get((ns, trial))
            if names is None:
                names = set((body.get("status") or {}).get("metrics") or {})
                self.names[(ns, trial)] = names
            for i, point in enumerate(points):
                try:
                    check_trial_names(names, list(point.metrics))
                except LimitExceeded as exc:
                    refused[i] = exc
                    continue
                names.update(point.metrics)
                kept.append((point.step, point.metrics))
        try:
            self.committer.submit(f"{ns}/{trial}", kept)
        except (KubeError, urllib3.exceptions.HTTPError, OSError, TimeoutError) as exc:
            if isinstance(exc, KubeError) and exc.status not in (0, *TRANSIENT):
                raise
            # the API server or etcd is away: nothing was acknowledged, the trainer sends again
            raise NotReady(f"the report could not be stored yet: {exc}") from exc
        self.wake(job)
        if phase == "Stopped":
            return BatchVerdict(ReportVerdict(True, "already stopping"), refused)
        objective = spec.objective.metric
        steps = [s for s, values in kept if objective in values]
        with self.lock:
            mine = sorted(self.curves.get((ns, trial), {}).items())
        decision = judge_batch(
            stopper,
            mine,
            steps,
            lambda: self._others(job, trial),
            lambda d: (
                self.telemetry.stop_decision(spec.early_stopping.name, d.stop)
                if self.telemetry
                else None
            ),
        )
        if not decision.stop:
            return BatchVerdict(ReportVerdict(False), refused, stopper.next_judged_step(mine))
        stopped = {
            "phase": "Stopped",
            "reason": "EarlyStopped",
            "message": f"early stopping: {decision.reason}",
            "completionTime": now(),
        }
        self.run(self.patch_status(ns, trial, stopped))
        self.wake(job)
        return BatchVerdict(ReportVerdict(True, decision.reason), refused)

    def _others(self, job: Key, trial: str) -> list[list[tuple[int, float]]]:
        ns = job[0]
        with self.lock:
            curves = [
                sorted(self._curve((ns, name), other).items())
                for name, other in self.cache.of_job("trials", job).items()
                if name != trial
            ]
        return [c for c in curves if c]

    def _reporting(self, ns: str, trial: str, phase: str | None) -> bool:
        """Whether the trial still takes reports: it runs, or it was stopped and its pod is still
        on its way out (the trainer's last reports during the grace period)."""
        if phase in (None, "Pending", "Running"):
            return True
        if phase != "Stopped":
            return False
        pod = self.cache.get("pods", (ns, trial))
        return pod is not None and (pod.get("status") or {}).get("phase") not in (
            "Succeeded",
            "Failed",
        )

    def _authenticate(self, trial: str, token: str) -> dict[str, Any]:
        candidates = self.cache.find_trial(trial)
        if not candidates:
            raise UnknownTrial(trial)
        for body in candidates:
            expected = (body["metadata"].get("annotations") or {}).get(TOKEN_DIGEST_ANNOTATION)
            if expected and matches_digest(expected, token):
                return body
        raise BadToken(trial)

    def _job(self, job: Key) -> tuple[TuningJobSpec, BaseStopper] | None:
        body = self.cache.get("tuningjobs", job)
        if body is None:
            return None
        try:
            spec = job_spec(body)
        except SpecError:
            return None
        with self.lock:
            known = self._stoppers.get(job)
            if known is None or known[0] is not spec:
                known = self._stoppers[job] = (spec, create_stopper(spec))
        return known

    def _curve(self, key: Key, body: dict[str, Any] | None = None) -> dict[int, float]:
        """The objective curve of a trial: ours if we wrote it, else as stored in its status."""
        if key not in self.curves:
            return stored_curve(body or self.cache.get("trials", key) or {})
        return self.curves[key]

    def _write(self, name: str, points: list[CommitPoint]) -> None:
        """One status write carrying every report of this interval for one trial."""
        ns, trial = name.split("/", 1)
        key = (ns, trial)
        body = self.cache.get("trials", key)
        if body is None:
            raise UnknownTrial(trial)
        found = self._job((ns, body["spec"]["job"]))
        if found is None:
            raise UnknownTrial(trial)
        objective, stopper = found[0].objective, found[1]
        with self.lock:
            curve = dict(self._curve(key, body))
            latest = dict(self.latest.get(key) or (body.get("status") or {}).get("metrics") or {})
        for step, values in points:
            latest.update(values)
            if objective.metric in values:
                curve[step] = values[objective.metric]
        maximize = objective.direction.value == "maximize"
        kept = compact_curve(sorted(curve.items()), stopper.anchors(), maximize)
        curve = dict(kept)
        patch = build_metrics_status(kept, maximize, latest)
        self.run(self.patch_status(ns, trial, patch))
        with self.lock:
            self.curves[key], self.latest[key] = curve, latest


def loop_runner(
    loop: asyncio.AbstractEventLoop, timeout: float = 30.0
) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run coroutines on `loop` from another thread, waiting for the result."""

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    return run
