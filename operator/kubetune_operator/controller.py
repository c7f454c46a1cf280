"""The Kubernetes driver of the decision core: reconcile one TuningJob at a time.

`Controller.reconcile(job)` reads the job, its Trials and their Pods from the cache, records pod
phases on the Trials, asks `kubetune.engine.decide` what happens next (suggestions over gRPC) and
carries the decision out: Trials and Pods created, stopped trials' pods deleted, the job's status
written. All state is in the custom resources, so a restarted operator simply reconciles again;
trial names are deterministic and creating one twice is a harmless 409.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import secrets
import time
from collections.abc import Hashable, Mapping
from typing import Any

import grpc
from kubetune.client._cluster import trial_info
from kubetune.collect import LineReader
from kubetune.engine import Decision, SuggestFn, TrialView, decide
from kubetune.rpc.tokens import digest, new_token
from kubetune.search import Observation
from kubetune.spec import Checkpoints, FieldError, SpecError, TrialState, TuningJobSpec
from kubetune.telemetry import PullCollector, Target
from kubetune.warm import Fit, fitting, no_such_job, points_of_trials

from .builders import (
    API_VERSION,
    TOKEN_DIGEST_ANNOTATION,
    TRIAL_LABEL,
    DefaultImage,
    build_checkpoint_claim,
    build_event,
    build_token_secret,
    build_trial,
    build_trial_job,
    build_trial_pod,
    job_spec,
)
from .cache import Cache, Key, key_of
from .exporter import OperatorHealth, scrape_targets
from .kube import KubeApi, KubeError, pod_problem
from .logs import LogFollower, LogTarget
from .status import condition, job_as_pod, job_status_patch, observe_trial, stored_curve
from .workqueue import WorkQueue

FINISHED = ("Succeeded", "Failed")
STOPPED = {"phase": TrialState.stopped.phase}
log = logging.getLogger("kubetune.operator")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trial_view(trial: Mapping[str, Any], state: TrialState) -> TrialView:
    status = trial.get("status") or {}
    curve = tuple(sorted(stored_curve(trial).items()))
    return TrialView(
        name=trial["metadata"]["name"],
        index=int(trial["spec"]["index"]),
        params=trial["spec"]["params"],
        state=state,
        curve=curve,
        objective=status.get("objective"),
        metrics=status.get("metrics") or {},
    )


class Controller:
    def __init__(
        self,
        cache: Cache,
        kube: KubeApi,
        suggest: SuggestFn,
        metrics_address: str,
        max_backoff: float = 30.0,
        health: OperatorHealth | None = None,
        collector: PullCollector | None = None,
        default_image: DefaultImage | None = None,
        logs: LogFollower | None = None,
        collector_image: str | None = None,
    ) -> None:
        self.cache = cache
        self.default_image = default_image
        self.kube = kube
        self.suggest = suggest
        self.metrics_address = metrics_address
        self.max_backoff = max_backoff
        self.health = health
        self.collector = collector  # scrapes the trials of jobs with metricsCollector prometheus
        self.collector_image = collector_image  # the file collector's sidecar
        self.logs = logs  # follows the pod logs of trials of jobs with metricsCollector stdout
        self.queue = WorkQueue(health.queue_latency.observe if health else lambda _: None)
        self.ready = asyncio.Event()  # set once kopf has listed everything (indexes are ready)
        self._backoff: dict[Key, float] = {}
        self._warm_told: set[Key] = set()  # jobs told which warm-start points were left out
        self._deleting: set[Key] = set()  # pods we deleted that the watch still shows unmarked
        self._claims: set[tuple[str, str, str]] = set()  # (namespace, job, uid) with a claim
        self._posting: set[asyncio.Task[None]] = set()

    async def run(self, workers: int) -> None:
        await self.ready.wait()
        await asyncio.gather(*(self._worker() for _ in range(workers)))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = time.perf_counter()
            try:
                await self.reconcile(key)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.health is not None:
                    self.health.reconcile_errors.inc()
                delay = self._next_backoff(key)  # type: ignore[arg-type]
                log.exception("reconciling %s failed; again in %.1f s", key, delay)
                self.queue.add(key, delay)
            finally:
                self.queue.done(key)
                if self.health is not None:
                    self.health.reconcile_duration.observe(time.perf_counter() - started)

    def _next_backoff(self, key: Key) -> float:
        delay = min(self._backoff.get(key, 0.5) * 2, self.max_backoff)
        self._backoff[key] = delay
        return delay

    def _scrape(self, key: Key, targets: dict[Hashable, Target]) -> None:
        if self.collector is not None:
            self.collector.set_targets(key, targets)

    def _forget(self, key: Key) -> None:
        """Stop scraping and following the trials of a job that is done or gone."""
        self._warm_told.discard(key)
        self._scrape(key, {})
        if self.logs is not None:
            self.logs.set_targets(key, {})

    def _follow_logs(self, key: Key, spec: TuningJobSpec, trials: Mapping[str, Any]) -> None:
        """Follow the pod log of each trial of a stdout-collected job whose pod has started."""
        if self.logs is None:
            return
        targets: dict[Hashable, LogTarget] = {}
        if spec.collector.kind == "stdout" and spec.trial_template is not None:
            container = spec.trial_template.primary()["name"]
            pods = self.trial_pods(key)
            for name, trial in trials.items():
                pod = pods.get(name)
                state = TrialState.from_phase(_phase(trial))
                if pod is None or state.final or _phase(pod) in (None, "Pending"):
                    continue
                reader = functools.partial(LineReader.of, spec)
                targets[(key[0], name)] = LogTarget(
                    key[0], pod["metadata"]["name"], container, reader
                )
        self.logs.set_targets(key, targets)

    def _settling(self, spec: TuningJobSpec, key: Key, trial: str, pod: Any) -> bool:
        """Whether a stdout-collected trial's pod has ended but its last lines are not stored
        yet: its result waits for them (the stream's end wakes the job)."""
        if self.logs is None or spec.collector.kind != "stdout" or _phase(pod) not in FINISHED:
            return False
        return not self.logs.settled((key[0], trial))

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post a Kubernetes Event in the background; losing one never blocks a reconcile."""
        body = build_event(obj, type_, reason, message, now(), secrets.token_hex(6))

        async def post() -> None:
            try:
                await self.kube.create(body, "events")
            except Exception as exc:
                log.warning("could not post event %s: %s", reason, exc)

        task = asyncio.get_running_loop().create_task(post())
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    # -- one pass -----------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> None:
        job = self.cache.get("tuningjobs", key)
        if job is None:
            self._forget(key)
            return
        if job["metadata"].get("deletionTimestamp"):
            self._forget(key)
            return  # being deleted: the garbage collector removes its trials and pods
        status = job.get("status") or {}
        trials = self.cache.of_job("trials", key)
        pods = self._workloads(job, key)
        if status.get("phase") in FINISHED:
            self._forget(key)
            await self._release_pods(job, trials, pods)
            return
        if not status.get("phase") or status["phase"] == "Pending":
            validating = condition([], "Validated", False, "Validating", "checking the spec", now())
            validating["status"] = "Unknown"
            job = await self._write_job_status(
                job, {"phase": "Validating", "conditions": [validating]}
            )
            status = job.get("status") or {}
        try:
            spec = job_spec(job)
            await self._advance(key, job, spec, trials, pods)
        except (SpecError, InvalidPod) as exc:
            await self._invalid(job, str(exc), getattr(exc, "reason", "InvalidSpec"))

    async def _advance(
        self,
        key: Key,
        job: dict[str, Any],
        spec: TuningJobSpec,
        trials: dict[str, dict[str, Any]],
        pods: dict[str, dict[str, Any]],
    ) -> None:
        """Record pod phases on the Trials, decide, carry the decision out, write the status."""
        status = job.get("status") or {}
        if spec.checkpoints is not None:
            await self._ensure_claim(job, spec.checkpoints)
        views: list[TrialView] = []
        moment = now()
        for name, trial in sorted(trials.items(), key=lambda kv: int(kv[1]["spec"]["index"])):
            pod = pods.get(name)
            if self._settling(spec, key, name, pod):
                pod = {**(pod or {}), "status": {"phase": "Running"}}
                self.queue.add(key, 0.5)
            seen = observe_trial(trial, pod, moment, spec.trial_retries)
            if seen.status_patch is not None:
                trial = await self._record(job, trial, seen.state, seen.status_patch)
                retrying = seen.state is TrialState.pending
                if retrying and pod is not None and not pod["metadata"].get("deletionTimestamp"):
                    await self._delete_pod(job, name)  # an evicted pod the kubelet left
            if seen.needs_pod and not trial["metadata"].get("deletionTimestamp"):
                await self._create_pod(job, trial)
            views.append(trial_view(trial, seen.state))
        prior = self._prior(key, job, spec, started=bool(trials))
        decision = await self._decide(key, job, spec, views, prior.observations)
        if decision is None:
            return
        await self._carry_out(job, decision, trials)
        trials = self.cache.of_job("trials", key)
        await self._release_pods(job, trials, self._workloads(job, key))
        self._scrape(key, scrape_targets(spec, trials, self.trial_pods(key)))
        self._follow_logs(key, spec, trials)

        new_status = job_status_patch(spec, views, decision, status, now(), prior.status(spec))
        new_status["conditions"].append(
            condition(
                status.get("conditions", []),
                "SuggestionsAvailable",
                True,
                "SuggestionServiceAvailable",
                "",
                now(),
            )
        )
        new_status["observedGeneration"] = job["metadata"].get("generation")
        if decision.finish is not None:
            kind = "Normal" if decision.finish.succeeded else "Warning"
            self.event(job, kind, decision.finish.reason.value, decision.finish.message)
        if any(status.get(k) != v for k, v in new_status.items()):
            await self._write_job_status(job, new_status)

    async def _record(
        self,
        job: dict[str, Any],
        trial: dict[str, Any],
        state: TrialState,
        patch: dict[str, Any],
    ) -> dict[str, Any]:
        """Write a trial's observed phase, and post its Event."""
        name = trial["metadata"]["name"]
        trial = await self._write_trial_status(trial, patch)
        if state is TrialState.failed:
            self.event(job, "Warning", "TrialFailed", f"{name}: {patch.get('message')}")
        elif state is TrialState.succeeded:
            self.event(job, "Normal", "TrialSucceeded", f"{name} finished")
        elif patch.get("reason") == "Retrying":
            self.event(job, "Warning", "TrialRetrying", f"{name}: {patch.get('message')}")
        return trial

    def _prior(self, key: Key, job: dict[str, Any], spec: TuningJobSpec, started: bool) -> Fit:
        """Warm start: the inline points and the trials of the jobs in warmStart.fromJobs
        (same namespace) that fit the space. Those that do not fit: one Warning event. A
        fromJobs name that is not there is a spec error before the first trial; once the job
        runs, an earlier job deleted since only stops contributing (the job goes on)."""
        warm = spec.warm_start
        if warm is None:
            return Fit([], [])
        if warm.from_file is not None:
            raise SpecError(
                [
                    FieldError(
                        "spec.warmStart.fromFile",
                        "is read where the manifest is submitted (kubetune submit, "
                        "Client.submit), which puts its rows in warmStart.points; the "
                        "operator cannot read your files",
                    )
                ]
            )
        points = list(warm.points)
        for i, name in enumerate(warm.from_jobs):
            earlier = (key[0], name)
            if name == key[1] or self.cache.get("tuningjobs", earlier) is None:
                if started and name != key[1]:
                    continue
                raise no_such_job(i, name, f"namespace {key[0]}")
            infos = [trial_info(t) for t in self.cache.of_job("trials", earlier).values()]
            points += points_of_trials(infos, name)
        fit = fitting(spec, points)
        if fit.skipped and key not in self._warm_told:
            self._warm_told.add(key)
            listed = "; ".join(fit.skipped[:20]) + ("; ..." if len(fit.skipped) > 20 else "")
            message = f"{fit.left_out} earlier results left out: {listed}"
            self.event(job, "Warning", "WarmStartPointsLeftOut", message)
        return fit

    async def _decide(
        self,
        key: Key,
        job: dict[str, Any],
        spec: TuningJobSpec,
        views: list[TrialView],
        prior: list[Observation],
    ) -> Decision | None:
        """The decision core's answer; None (and a condition saying why) while the
        SuggestionService is out, with a retry after a backoff."""
        try:
            decision = await asyncio.to_thread(
                decide, key[1], spec, views, self.suggest, None, prior
            )
        except grpc.RpcError as exc:
            status = job.get("status") or {}
            delay = self._next_backoff(key)
            message = f"suggestion service unavailable ({_short(exc)}); retrying in {delay:.0f} s"
            log.warning("%s/%s: %s", *key, message)
            conditions = [
                c for c in status.get("conditions", []) if c.get("type") != "SuggestionsAvailable"
            ]
            conditions.append(
                condition(
                    status.get("conditions", []),
                    "SuggestionsAvailable",
                    False,
                    "SuggestionServiceUnavailable",
                    message,
                    now(),
                )
            )
            await self._write_job_status(job, {"conditions": conditions})
            self.queue.add(key, delay)
            return None
        self._backoff.pop(key, None)
        return decision

    async def _carry_out(
        self, job: dict[str, Any], decision: Decision, trials: Mapping[str, dict[str, Any]]
    ) -> None:
        for stop in decision.stop:
            trial = trials.get(stop.name)
            if trial is None or TrialState.from_phase(_phase(trial)).final:
                continue
            stopping = {
                "phase": TrialState.stopping.phase,
                "reason": "Stopped",
                "message": stop.reason,
            }
            trial = await self._write_trial_status(trial, stopping)
            if not await self._delete_pod(job, stop.name):  # no pod left to wait for
                await self._write_trial_status(trial, STOPPED | {"completionTime": now()})
            self.event(job, "Normal", "TrialStopped", f"{stop.name}: {stop.reason}")
        for launch in decision.start:
            token = new_token()
            trial = build_trial(job, launch, token_digest=digest(token))
            self._check_pod(job, trial)  # before anything is created
            created = await self.kube.create(trial, "trials")
            if created is None:  # already there (a stale cache, or a restart): nothing to do
                continue
            self.cache.put("trials", created, own=True)
            await self._create_pod(job, created, token)
            self.event(job, "Normal", "TrialCreated", f"{launch.name}: {dict(launch.params)}")

    async def _ensure_claim(self, job: dict[str, Any], checkpoints: Checkpoints) -> None:
        """The job's checkpoint claim: an existing one is the user's; a template's is created
        once (a 409 means it is there)."""
        if checkpoints.storage is None:
            raise InvalidPod(
                "spec.checkpoints.storage: required on a cluster (persistentVolumeClaim or "
                "volumeClaimTemplate)"
            )
        ns, name = key_of(job)
        key = (ns, name, job["metadata"].get("uid", ""))
        if checkpoints.storage.volume_claim_template is None or key in self._claims:
            return
        await self.kube.create(build_checkpoint_claim(job, checkpoints), "persistentvolumeclaims")
        self._claims.add(key)

    def _check_pod(self, job: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
        """The trial's Pod, if the client would accept it; else InvalidPod."""
        if "uid" not in trial["metadata"]:  # not created yet: check the pod it will get
            trial = {**trial, "metadata": {**trial["metadata"], "uid": "to-be-assigned"}}
        try:
            pod = build_trial_pod(
                job, trial, self.metrics_address, self.default_image, self.collector_image
            )
        except ValueError as exc:
            raise InvalidPod(str(exc)) from None
        problem = pod_problem(pod)
        if problem is not None:
            raise InvalidPod(f"spec.trialTemplate: not a valid pod: {problem}")
        return pod

    async def _create_pod(
        self, job: dict[str, Any], trial: dict[str, Any], token: str | None = None
    ) -> None:
        """The trial's token Secret, then its Pod. Without `token` (a restart between the Trial
        and its Secret), a Secret that is there already holds the token whose digest the Trial
        has; one created now gets a new token, and the Trial its digest."""
        fresh = token or new_token()
        secret = await self.kube.create(build_token_secret(trial, fresh), "secrets")
        if secret is not None and token is None:
            ns, name = key_of(trial)
            annotations = {TOKEN_DIGEST_ANNOTATION: digest(fresh)}
            trial = await self.kube.patch(
                API_VERSION, "trials", ns, name, {"metadata": {"annotations": annotations}}
            )
            self.cache.put("trials", trial, own=True)
        jobs = uses_jobs(job)
        body = (
            build_trial_job(
                job, trial, self.metrics_address, self.default_image, self.collector_image
            )
            if jobs
            else self._check_pod(job, trial)
        )
        try:
            created = await self.kube.create(body, "jobs" if jobs else "pods")
        except KubeError as exc:
            if exc.status == 422 or (exc.status == 403 and "violates PodSecurity" in str(exc)):
                raise PodRejected(f"the API server refused the trial pod: {exc}") from None
            raise
        if created is not None:
            self.cache.put("jobs" if jobs else "pods", created, own=True)

    async def _delete_pod(self, job: Mapping[str, Any], name: str) -> bool:
        """Delete a trial's pod (or its Job, in the foreground); False if there was none. The
        cache keeps it until its watch event says it is gone (a stopping trial is stopped only
        then); until the watch shows it terminating, it is not deleted again."""
        ns = job["metadata"].get("namespace", "default")
        if uses_jobs(job):
            gone = await self.kube.delete("batch/v1", "jobs", ns, name)
        else:
            gone = await self.kube.delete("v1", "pods", ns, name)
        if gone:
            self._deleting.add((ns, name))
        return gone

    def _workloads(self, job: Mapping[str, Any], key: Key) -> dict[str, dict[str, Any]]:
        """What runs each trial, by trial name: its Pod, or its Job as a pod-shaped view."""
        if uses_jobs(job):
            return {name: job_as_pod(j) for name, j in self.cache.of_job("jobs", key).items()}
        return self.cache.of_job("pods", key)

    def trial_pods(self, key: Key) -> dict[str, dict[str, Any]]:
        """The pod of each trial, by trial name: a Job's newest pod for a Job trial."""
        pods: dict[str, dict[str, Any]] = {}
        for pod in sorted(
            self.cache.of_job("pods", key).values(),
            key=lambda p: str(p["metadata"].get("creationTimestamp") or ""),
        ):
            trial = (pod["metadata"].get("labels") or {}).get(TRIAL_LABEL)
            if trial:
                pods[trial] = pod
        return pods

    async def _release_pods(
        self,
        job: dict[str, Any],
        trials: Mapping[str, dict[str, Any]],
        pods: Mapping[str, dict[str, Any]],
    ) -> None:
        """Delete the pods of trials whose result is recorded, unless spec.retainPods is set.

        Pods of stopping trials are deleted even then, since they are still running."""
        retain = bool((job.get("spec") or {}).get("retainPods"))
        ns = job["metadata"].get("namespace", "default")
        for name, pod in pods.items():
            if pod["metadata"].get("deletionTimestamp"):
                self._deleting.discard((ns, name))
                continue  # already terminating
            if (ns, name) in self._deleting:
                continue  # deleted by us a moment ago; the watch has not caught up
            state = TrialState.from_phase(_phase(trials.get(name)))
            pod_done = _phase(pod) in ("Succeeded", "Failed")
            if (state is TrialState.stopping and not pod_done) or (state.final and not retain):
                await self._delete_pod(job, name)
        self._deleting -= {(ns, name) for name in trials if name not in pods}  # gone now

    async def _invalid(self, job: dict[str, Any], message: str, reason: str) -> None:
        old = (job.get("status") or {}).get("conditions", [])
        t = now()
        await self._write_job_status(
            job,
            {
                "phase": "Failed",
                "reason": reason,
                "message": message,
                "completionTime": t,
                "conditions": [
                    condition(old, "Validated", False, reason, message, t),
                    condition(old, "Failed", True, reason, message, t),
                ],
            },
        )
        self.event(job, "Warning", reason, message)

    async def write_status(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status of a TuningJob or Trial and keep the result in the cache."""
        updated = await self.kube.patch(
            API_VERSION, plural, namespace, name, {"status": patch}, status=True
        )
        self.cache.put(plural, updated, own=True)
        return updated

    async def _write_job_status(self, job: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        return await self.write_status("tuningjobs", *key_of(job), patch)

    async def _write_trial_status(
        self, trial: dict[str, Any], patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.write_status("trials", *key_of(trial), patch)


class InvalidPod(ValueError):
    """The trial template does not make a valid Pod: a problem of the spec, not worth a retry."""


class PodRejected(InvalidPod):
    """The API server's admission refused a trial pod (Pod Security, validation): every trial
    would be refused the same way, so the job fails quoting the message instead of retrying."""

    reason = "PodRejected"


def uses_jobs(job: Mapping[str, Any]) -> bool:
    """Whether the TuningJob's trials run as batch/v1 Jobs (`trialTemplate.job`)."""
    template = (job.get("spec") or {}).get("trialTemplate") or {}
    return bool(template.get("job"))


def _phase(obj: Mapping[str, Any] | None) -> str | None:
    return ((obj or {}).get("status") or {}).get("phase")


def _short(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return (text or type(exc).__name__).splitlines()[0][:200]
