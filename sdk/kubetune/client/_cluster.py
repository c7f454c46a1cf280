"""The cluster backend of `kubetune.Client`: TuningJobs and Trials through the official
`kubernetes` client.

`wait` follows a watch on the one job (a field selector on its name), from the resourceVersion of
a list; after 410 Gone it lists again and watches from there, and after a dropped connection it
reconnects with backoff, so a long wait survives API-server restarts. Every API failure becomes
one `ClientError` line naming the verb and the resource.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import urllib3
from kubernetes import client, watch
from pydantic import ValidationError

from ..kubeconfig import connect
from ..spec import (
    TrialSpec,
    TrialState,
    TrialStatus,
    TuningJob,
    TuningJobSpec,
    TuningJobStatus,
)
from ..warm import inline_file, no_such_job
from ._errors import (
    AlreadyExists,
    ClientError,
    Forbidden,
    NotFound,
    Unavailable,
    WaitTimeout,
)
from ._types import JobEvent, JobStatus, TrialInfo, marked

GROUP, VERSION = "kubetune.dev", "v1alpha1"
JOB_LABEL = "kubetune.dev/job"
REQUEST_TIMEOUT = (10, 60)  # connect and read seconds of every call that is not a watch
WATCH_SECONDS = 240  # a watch is renewed this often even when nothing happens
MAX_BACKOFF = 10.0
EVENT_LIST_LIMIT = 500  # Events read per kind; the newest are shown
NETWORK = (urllib3.exceptions.HTTPError, OSError)


class ClusterBackend:
    def __init__(self, context: str | None = None, namespace: str | None = None) -> None:
        self.context = context
        self.api, default_namespace = connect(context)
        self.namespace = namespace or default_namespace
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.host = self.api.configuration.host

    def describe(self) -> str:
        return f"namespace={self.namespace!r}, host={self.host!r}"

    def flags(self) -> builtins.list[str]:
        where = ["--context", self.context] if self.context else []
        return [*where, "-n", str(self.namespace)]

    def place(self) -> str:
        return f" in namespace {self.namespace}"

    def only_job(self) -> str | None:
        return None  # a namespace may hold any number of jobs: the name is needed

    def plots_dir(self, name: str) -> Path:
        return Path(".kubetune") / "plots" / name

    # -- verbs ------------------------------------------------------------------------------
    def _warm_spec(self, job: TuningJob, manifest: dict[str, Any], base_dir: Path) -> Any:
        """The manifest's spec with warmStart.fromFile read into points (the operator cannot
        read the submitter's files); every fromJobs name must be a job here."""
        warm = job.spec.warm_start
        if warm is None:
            return manifest["spec"]
        for i, name in enumerate(warm.from_jobs):
            try:
                self.get(name)
            except NotFound:
                raise no_such_job(i, name, f"namespace {self.namespace}") from None
        if warm.from_file is None:
            return manifest["spec"]
        inlined = inline_file(job, base_dir).spec.warm_start
        assert inlined is not None
        return {**manifest["spec"], "warmStart": inlined.to_manifest()}

    def submit(self, job: TuningJob, manifest: dict[str, Any], base_dir: Path) -> str:
        """Create the TuningJob (`job` and `base_dir` matter only to local runs)."""
        namespace = manifest["metadata"].get("namespace") or self.namespace
        if namespace != self.namespace:
            raise ClientError(
                f"metadata.namespace {namespace!r} differs from the client's namespace "
                f"{self.namespace!r}; drop one of them"
            )
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
        body["spec"] = self._warm_spec(job, manifest, base_dir)
        if body["metadata"].get("generateName"):
            body["metadata"].pop("name", None)
        created = self._call(
            "create",
            "tuningjobs",
            body["metadata"].get("name"),
            lambda: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "tuningjobs", body, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        return str(created["metadata"]["name"])

    def raw(self, name: str) -> dict[str, Any]:
        return dict(
            self._call(
                "get",
                "tuningjobs",
                name,
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "tuningjobs",
                    name,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        )

    def get(self, name: str) -> JobStatus:
        return job_status(self.raw(name))

    def spec(self, name: str) -> TuningJobSpec:
        obj = self.raw(name)
        return TuningJob.parse(obj, f"tuningjob/{name}").spec

    def list(self, selector: str | None = None) -> builtins.list[JobStatus]:
        listed = self._call(
            "list",
            "tuningjobs",
            None,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                "tuningjobs",
                label_selector=selector or "",
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        return sorted((job_status(o) for o in listed["items"]), key=lambda j: j.name)

    def trials(self, name: str) -> builtins.list[TrialInfo]:
        return self.view(name)[1]

    def view(self, name: str) -> tuple[JobStatus, builtins.list[TrialInfo]]:
        status = self.get(name)  # a missing job is an error, not an empty list
        listed = self._call(
            "list",
            "trials",
            None,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                "trials",
                label_selector=f"{JOB_LABEL}={name}",
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        trials = sorted((trial_info(o) for o in listed["items"]), key=lambda t: t.index)
        return status, marked(status, trials)

    def wait(
        self, name: str, deadline: float | None, on_change: Callable[[JobStatus], None]
    ) -> JobStatus:
        status, version = self._list_one(name)
        on_change(status)
        backoff = 0.5
        while not status.settled:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"timed out waiting for job {name!r} to finish")
            seconds = WATCH_SECONDS if remaining is None else max(1, min(WATCH_SECONDS, remaining))
            try:
                for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    "tuningjobs",
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=int(seconds),
                    _request_timeout=(REQUEST_TIMEOUT[0], seconds + 30),
                ):
                    obj = event["raw_object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    backoff = 0.5
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        raise NotFound(f"job {name!r} was deleted while waiting for it")
                    status = job_status(obj)
                    on_change(status)
                    if status.settled:
                        return status
            except client.ApiException as exc:
                if exc.status != 410:  # 410: the watch expired; list again and resume
                    self._fail(exc, "watch", "tuningjobs", name)
                status, version = self._list_one(name)
                on_change(status)
            except NETWORK:  # the connection dropped: reconnect from where we were
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        return status

    def _list_one(self, name: str) -> tuple[JobStatus, str]:
        """The job and the resourceVersion to watch from (that of the list, never too old)."""
        listed = self._call(
            "list",
            "tuningjobs",
            name,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                "tuningjobs",
                field_selector=f"metadata.name={name}",
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        if not listed["items"]:
            raise NotFound(f"job {name!r} not found in namespace {self.namespace!r}")
        return job_status(listed["items"][0]), str(listed["metadata"]["resourceVersion"])

    def logs(self, trial: str, follow: bool, job: str | None = None) -> Iterator[str]:
        pod = self._pod(trial, follow)
        if pod is None:
            return
        name = pod["metadata"]["name"]  # the trial's name, or a Job pod's
        if not follow:
            text = self._call(
                "get",
                "pods/log",
                trial,
                lambda: self.core.read_namespaced_pod_log(
                    name, self.namespace, _request_timeout=REQUEST_TIMEOUT
                ),
            )
            yield from str(text).splitlines()
            return
        try:
            yield from watch.Watch().stream(  # type: ignore[no-untyped-call]
                self.core.read_namespaced_pod_log, name, self.namespace, follow=True
            )
        except client.ApiException as exc:
            self._fail(exc, "get", "pods/log", trial)

    def _pod(self, trial: str, follow: bool) -> dict[str, Any] | None:
        """The trial's pod once it has started (with `follow`, wait for that); None when it has
        not started and we do not wait."""
        while True:
            try:
                pod = self.core.read_namespaced_pod(
                    trial, self.namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                )
                body: dict[str, Any] = json.loads(pod.data)  # type: ignore[attr-defined]
            except client.ApiException as exc:
                if exc.status != 404:
                    self._fail(exc, "get", "pods", trial)
                body = self._job_pod(trial)
            except NETWORK as exc:
                raise Unavailable(
                    f"cannot reach the Kubernetes API at {self.host}: {exc}"
                ) from None
            phase = (body.get("status") or {}).get("phase")
            if phase and phase != "Pending":
                return body
            if not body:
                self._trial_without_pod(trial, follow)
            if not follow:
                return None
            self._await_pod_change(trial, body)

    def _job_pod(self, trial: str) -> dict[str, Any]:
        """The newest pod of a trial that runs as a Job (its pods are named by the Job
        controller); {} if it has none."""
        try:
            listed = self.core.list_namespaced_pod(
                self.namespace,
                label_selector=f"kubetune.dev/trial={trial}",
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
        except client.ApiException as exc:
            self._fail(exc, "list", "pods", trial)
        items = json.loads(listed.data)["items"]  # type: ignore[attr-defined]
        items.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return dict(items[-1]) if items else {}

    def _trial_without_pod(self, trial: str, follow: bool) -> None:
        """Why a trial has no pod: an error, unless (following) it or its pod is still to come;
        a trial not created yet is waited for while its job `<job>-<index>` runs."""
        try:
            found = self._call(
                "get",
                "trials",
                trial,
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "trials",
                    trial,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except NotFound:
            job = trial.rpartition("-")[0]
            if not follow or not job or self._finished_or_missing(job):
                raise
            return
        phase = (found.get("status") or {}).get("phase")
        if TrialState.from_phase(phase).final:
            raise NotFound(
                f"trial {trial!r} has finished ({phase}) and its pod is gone: the operator "
                "deletes the pods of finished trials unless spec.retainPods is true"
            )

    def _finished_or_missing(self, job: str) -> bool:
        try:
            return self.get(job).finished
        except NotFound:
            return True

    def _await_pod_change(self, trial: str, body: dict[str, Any]) -> None:
        version = (body.get("metadata") or {}).get("resourceVersion")
        try:
            for _ in watch.Watch().stream(  # type: ignore[no-untyped-call]
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=f"kubetune.dev/trial={trial}",  # its pod, or its Job's
                resource_version=version,
                timeout_seconds=30,
                deserialize=False,
                _request_timeout=(REQUEST_TIMEOUT[0], 60),
            ):
                return
        except client.ApiException as exc:
            if exc.status != 410:
                self._fail(exc, "watch", "pods", trial)
        except KeyError:  # an ERROR event (410) without deserializing: read the pod again
            return
        except NETWORK:
            time.sleep(1)

    def revision(self, name: str) -> str:
        return str(self.raw(name)["metadata"]["resourceVersion"])

    def events(self, name: str, limit: int) -> builtins.list[JobEvent]:
        """The newest `limit` Events about the job and its trials (Trials are `<job>-<index>`)."""
        found = []
        for kind in ("TuningJob", "Trial"):
            selector = f"involvedObject.kind={kind}"
            if kind == "TuningJob":
                selector += f",involvedObject.name={name}"
            listed = self._call("list", "events", None, partial(self._events, selector))
            for event in listed.items:
                about = event.involved_object
                if kind == "Trial" and not str(about.name).startswith(f"{name}-"):
                    continue
                when = event.last_timestamp or event.event_time or event.first_timestamp
                found.append(
                    JobEvent(
                        time=when.isoformat() if when else None,
                        type=event.type or "Normal",
                        reason=event.reason or "",
                        message=event.message or "",
                        object=f"{kind}/{about.name}",
                    )
                )
        found.sort(key=lambda e: e.time or "", reverse=True)
        return found[:limit]

    def _events(self, selector: str) -> Any:
        return self.core.list_namespaced_event(
            self.namespace,
            field_selector=selector,
            limit=EVENT_LIST_LIMIT,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def delete(self, name: str) -> None:
        self._call(
            "delete",
            "tuningjobs",
            name,
            lambda: self.custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                "tuningjobs",
                name,
                propagation_policy="Foreground",
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )

    def update(self, name: str, budget: dict[str, int]) -> JobStatus:
        from ._budget import FIELDS, apply_budget

        obj = self.raw(name)
        apply_budget(job_status(obj), obj["spec"], budget)
        patch = {"spec": {FIELDS[k]: v for k, v in budget.items()}}
        return job_status(
            self._call(
                "patch",
                "tuningjobs",
                name,
                lambda: self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "tuningjobs",
                    name,
                    patch,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        )

    # -- errors -----------------------------------------------------------------------------
    def _call(self, verb: str, resource: str, name: str | None, request: Callable[[], Any]) -> Any:
        try:
            return request()
        except client.ApiException as exc:
            self._fail(exc, verb, resource, name)
        except NETWORK as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unavailable(f"cannot reach the Kubernetes API at {self.host}: {reason}") from None

    def _fail(
        self, exc: client.ApiException, verb: str, resource: str, name: str | None
    ) -> NoReturn:
        what = f"{resource} {name!r}" if name else resource
        where = f"in namespace {self.namespace!r}"
        message = _message(exc)
        if exc.status == 404:
            if not self._served():
                raise Unavailable(
                    f"the cluster at {self.host} does not serve {GROUP}/{VERSION}: the kubetune "
                    "CRDs are not installed (kubectl apply -f manifests/crds, or the Helm chart)"
                ) from None
            raise NotFound(f"{what} not found {where}") from None
        if exc.status == 409 and verb == "create":
            raise AlreadyExists(f"{what} already exists {where}") from None
        if exc.status == 403:
            raise Forbidden(f"forbidden: cannot {verb} {resource} {where}: {message}") from None
        if exc.status == 401:
            raise Forbidden(
                f"unauthorized: the API server at {self.host} rejected the credentials"
            ) from None
        raise ClientError(f"{verb} {what} {where}: {exc.status} {message}") from None

    def _served(self) -> bool:
        try:
            groups = client.ApisApi(self.api).get_api_versions(_request_timeout=REQUEST_TIMEOUT)
        except (client.ApiException, *NETWORK):
            return True  # cannot tell: report the object as missing
        return any(g.name == GROUP for g in groups.groups or [])


def _message(exc: client.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError, TypeError):
        return str(exc.reason)


def job_status(obj: dict[str, Any]) -> JobStatus:
    """A TuningJob resource as a typed status."""
    meta = obj["metadata"]
    status = TuningJobStatus.model_validate(obj.get("status") or {})
    return JobStatus.of(meta["name"], _spec(obj), status, meta.get("namespace"), meta.get("labels"))


def _spec(obj: dict[str, Any]) -> TuningJobSpec | dict[str, Any]:
    """The job's spec; of one the operator refused, the summary fields as far as they go (the
    model's defaults for what is missing)."""
    raw = obj.get("spec") or {}
    try:
        return TuningJobSpec.model_validate(raw)
    except ValidationError:
        fields = TuningJobSpec.model_fields
        objective = raw.get("objective") or {}
        return {
            "algorithm": str((raw.get("algorithm") or {}).get("name", "")),
            "metric": str(objective.get("metric", "")),
            "direction": objective.get("direction", "maximize"),
            "max_trials": raw.get("maxTrials", fields["max_trials"].default),
            "parallelism": raw.get("parallelism", fields["parallelism"].default),
            "early_stopping": str((raw.get("earlyStopping") or {}).get("name", "none")),
        }


def trial_info(obj: dict[str, Any]) -> TrialInfo:
    """A Trial resource as typed trial information."""
    spec = TrialSpec.model_validate(obj.get("spec") or {})
    status = TrialStatus.model_validate(obj.get("status") or {})
    return TrialInfo(
        name=obj["metadata"]["name"],
        index=spec.index,
        params=spec.params,
        state=status.phase,
        reason=status.reason or status.message,
        objective=status.objective,
        metrics=status.metrics,
        curve=status.curve,
        budget=spec.budget,
        start_time=status.start_time,
        completion_time=status.completion_time,
        continues=spec.continues.trial if spec.continues else None,
        resume_step=spec.continues.step if spec.continues else None,
        retries=status.retries,
    )
