"""The operator's store of reports: a trial's metrics become its Trial status.

`TrialStatusStore` is what `kubetune.intake.MetricsIntake` persists through on a cluster; the
intake authenticates, judges and answers, exactly as for a local run. Status stays small: a
trial has at most MAX_NAMES_PER_TRIAL metric names (more is INVALID_ARGUMENT) and its curve is
compacted to CURVE_LIMIT points that keep what the stopping rules and the objective need
(`kubetune.stopping.compact_curve`).

A report is acknowledged only after the Trial status holding it has been written (group commit:
all reports of one interval for a trial become one status patch), so an operator killed at any
moment loses no acknowledged metric; a restarted one reloads the curves from the Trials. When the
stopping rule rejects a trial, its status says Stopping before the reply tells the trainer to
stop. A write that fails because the API server or etcd is away answers NOT_READY, so the trainer
keeps the points and sends them again. Reports for a trial that has ended get
FAILED_PRECONDITION: a stray process cannot change a finished result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from typing import Any

import urllib3
from kubetune.intake import Rule
from kubetune.rpc.limits import LimitExceeded, check_trial_names
from kubetune.rpc.metrics import BadToken, NotReady, Point, TrialEnded, UnknownTrial
from kubetune.rpc.tokens import matches_digest
from kubetune.spec import SpecError, TrialState, TuningJobSpec
from kubetune.stopping import compact_curve
from kubetune.stopping._base import Curve

from .builders import TOKEN_DIGEST_ANNOTATION, job_spec
from .cache import Cache, Key, key_of
from .group_commit import CommitPoint, GroupCommitter
from .kube import TRANSIENT, KubeError
from .status import build_metrics_status, stored_curve


class TrialStatusStore:
    """The operator's `kubetune.intake.TrialStore`: a trial's reports live in its status."""

    def __init__(
        self,
        cache: Cache,
        run: Callable[[Coroutine[Any, Any, Any]], Any],
        patch_status: Callable[[str, str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]],
        interval: float = 0.5,
        ready: Callable[[], bool] = lambda: True,
        max_writes_per_second: float = 200.0,
    ) -> None:
        self.cache = cache
        self.ready = ready  # false until kopf has listed every Trial and TuningJob
        self.run = run  # runs a coroutine on the operator's loop and returns its result
        self.patch_status = patch_status
        self.curves: dict[Key, dict[int, float]] = {}
        self.latest: dict[Key, dict[str, float]] = {}
        self.names: dict[Key, set[str]] = {}  # distinct metric names per trial, bounded
        self.lock = threading.Lock()
        self._rules: dict[Key, tuple[TuningJobSpec, Rule]] = {}  # per job, its spec's
        self.committer = GroupCommitter(self._write, interval, max_writes_per_second)

    def close(self) -> None:
        self.committer.close()

    # -- TrialStore ----------------------------------------------------------------------------
    def find(self, trial: str, token: str) -> Hashable:
        self._check_ready()
        candidates = self.cache.find_trial(trial)
        if not candidates:
            raise UnknownTrial(trial)
        for body in candidates:
            expected = (body["metadata"].get("annotations") or {}).get(TOKEN_DIGEST_ANNOTATION)
            if expected and matches_digest(expected, token):
                return key_of(body)
        raise BadToken(trial)

    def rule(self, key: Hashable) -> Rule:
        self._check_ready()
        body = self._trial(key)
        found = self._job((body["metadata"].get("namespace", ""), body["spec"]["job"]))
        if found is None:
            raise UnknownTrial(body["metadata"]["name"])
        return found[1]

    def persist(
        self, key: Hashable, points: Sequence[Point]
    ) -> tuple[TrialState, dict[int, LimitExceeded]]:
        body = self._trial(key)
        ns, trial = key_of(body)
        state = _reporting_state(body)
        if not state.reporting:
            raise TrialEnded(trial, state.phase)
        refused: dict[int, LimitExceeded] = {}
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
        return state, refused

    def curve(self, key: Hashable) -> list[tuple[int, float]]:
        with self.lock:
            return sorted(self._curve(self._key(key)).items())

    def rivals(self, key: Hashable) -> list[Curve]:
        ns, trial = self._key(key)
        body = self._trial(key)
        with self.lock:
            curves = [
                sorted(self._curve((ns, name), other).items())
                for name, other in self.cache.of_job("trials", (ns, body["spec"]["job"])).items()
                if name != trial
            ]
        return [c for c in curves if c]

    def stop(self, key: Hashable, reason: str) -> bool:
        """Stopping, with the reason, in the Trial's status; the controller then deletes its pod
        and records Stopped once the pod is gone."""
        body = self._trial(key)
        if _reporting_state(body) is not TrialState.running:
            return False
        stopping = {"phase": TrialState.stopping.phase, "reason": "EarlyStopped", "message": reason}
        self.run(self.patch_status(*self._key(key), stopping))
        return True

    # -- the rest ------------------------------------------------------------------------------
    def job_of(self, key: Hashable) -> Key:
        body = self._trial(key)
        return body["metadata"].get("namespace", ""), body["spec"]["job"]

    def _check_ready(self) -> None:
        if not self.ready():  # "unknown" now may only mean "not listed yet": never drop a report
            raise NotReady("the operator is starting")

    @staticmethod
    def _key(key: Hashable) -> Key:
        assert isinstance(key, tuple) and len(key) == 2, key
        return str(key[0]), str(key[1])

    def _trial(self, key: Hashable) -> dict[str, Any]:
        ns, name = self._key(key)
        body = self.cache.get("trials", (ns, name))
        if body is None:
            raise UnknownTrial(name)
        return body

    def _job(self, job: Key) -> tuple[TuningJobSpec, Rule] | None:
        body = self.cache.get("tuningjobs", job)
        if body is None:
            return None
        try:
            spec = job_spec(body)
        except SpecError:
            return None
        with self.lock:
            known = self._rules.get(job)
            if known is None or known[0] is not spec:
                known = self._rules[job] = (spec, Rule.of(spec))
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
        objective, stopper = found[0].objective, found[1].stopper
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
        patch = build_metrics_status(kept, objective, latest)
        self.run(self.patch_status(ns, trial, patch))
        with self.lock:
            self.curves[key], self.latest[key] = curve, latest


def _reporting_state(body: Mapping[str, Any]) -> TrialState:
    """A Trial's state as far as reports go. Pending counts as running: the Trial says Pending
    until the operator has seen its pod run, but a report proves that it does (only the pod holds
    the token, and only a running pod is scraped)."""
    state = TrialState.from_phase((body.get("status") or {}).get("phase"))
    return TrialState.running if state is TrialState.pending else state


def loop_runner(
    loop: asyncio.AbstractEventLoop, timeout: float = 30.0
) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run coroutines on `loop` from another thread, waiting for the result."""

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    return run
