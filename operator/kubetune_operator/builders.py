"""Pure builders of the objects the operator creates: Trials, their token Secrets, trial Pods.

`build_trial(job, launch)`, `build_token_secret(trial, token)` and `build_trial_pod(job, trial,
...)` return plain dicts; the controller only sends them to the API server. Everything here is a
function of its inputs.

A trial's metrics token lives only in its Secret (the pod reads it through `secretKeyRef`); the
Trial carries its SHA-256 digest, which is all the operator needs to check reports. Trial pods are
hardened by default (no service-account token, no privilege escalation, no capabilities, the
runtime's seccomp profile); whatever the template sets explicitly wins.
"""

from __future__ import annotations

import base64
import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetune import checkpoint
from kubetune.engine import TrialLaunch
from kubetune.spec import RESUME_MOUNT_PATH, Checkpoints, TuningJob, TuningJobSpec
from kubetune.trialenv import short_value, substitute, trial_env

API_VERSION = "kubetune.dev/v1alpha1"
JOB_LABEL = "kubetune.dev/job"
TRIAL_LABEL = "kubetune.dev/trial"
TOKEN_DIGEST_ANNOTATION = "kubetune.dev/token-sha256"
TOKEN_KEY = "token"  # the key of the token in a trial's Secret
TOKEN_ENV = "KUBETUNE_TRIAL_TOKEN"
SCRAPED_LABEL = "kubetune.dev/metrics-scraped"  # on pods whose metrics the operator scrapes
METRICS_PORT_NAME = "kt-metrics"  # the container port of a scraped trial's endpoint
CHECKPOINT_VOLUME = "kubetune-checkpoints"
METRICS_VOLUME = "kubetune-metrics"  # the file collector's emptyDir, shared with its sidecar
SIDECAR = "kubetune-metrics"  # the file collector's native sidecar


def owner_reference(obj: Mapping[str, Any], controller: bool = True) -> dict[str, Any]:
    """An ownerReference to `obj` (a dict with apiVersion, kind and metadata.name/uid)."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def params_summary(params: Mapping[str, Any], limit: int = 60) -> str:
    text = ",".join(f"{k}={short_value(v)}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_trial(
    job: Mapping[str, Any], launch: TrialLaunch, token_digest: str | None = None
) -> dict[str, Any]:
    """The Trial resource for one launch decision, owned by its TuningJob.

    `token_digest` (of the secret its pod reports metrics with) goes into an annotation."""
    meta = job["metadata"]
    trial: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Trial",
        "metadata": {
            "name": launch.name,
            "namespace": meta.get("namespace", "default"),
            "labels": {JOB_LABEL: meta["name"], TRIAL_LABEL: launch.name},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "job": meta["name"],
            "index": launch.index,
            "params": dict(launch.params),
            "budget": launch.budget,
        },
    }
    if launch.continues is not None:
        continues = {"trial": launch.continues.trial, "step": launch.continues.step}
        trial["spec"]["continues"] = continues
    if token_digest is not None:
        trial["metadata"]["annotations"] = {TOKEN_DIGEST_ANNOTATION: token_digest}
    return trial


def token_secret_name(trial: str) -> str:
    return f"{trial}-token"


def build_token_secret(trial: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The Secret holding a trial's metrics token, owned by (and collected with) the Trial."""
    meta = trial["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": token_secret_name(meta["name"]),
            "namespace": meta.get("namespace", "default"),
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": [owner_reference(trial)],
        },
        "type": "Opaque",
        "immutable": True,
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


@dataclass(frozen=True)
class DefaultImage:
    """The image of trial containers whose template names none (the chart's trainer image)."""

    image: str
    pull_policy: str | None = None

    def fill(self, container: dict[str, Any]) -> None:
        if not container.get("image"):
            container["image"] = self.image
            if self.pull_policy and "imagePullPolicy" not in container:
                container["imagePullPolicy"] = self.pull_policy


_specs: OrderedDict[tuple[Any, ...], TuningJobSpec] = OrderedDict()
_specs_lock = threading.Lock()
SPEC_CACHE = 1024  # parsed specs kept, most recently used first


def job_spec(job: Mapping[str, Any]) -> TuningJobSpec:
    """The TuningJob's parsed spec, parsed once per generation (a spec change bumps it); raises
    SpecError. Called for every reconcile, trial pod and report: pydantic parsing is not free."""
    meta = job["metadata"]
    key = (meta.get("namespace"), meta.get("name"), meta.get("uid"), meta.get("generation"))
    if key[2] is None or key[3] is None:  # not from an API server: no identity to cache by
        return TuningJob.parse(dict(job)).spec
    with _specs_lock:
        if key in _specs:
            _specs.move_to_end(key)
            return _specs[key]
    spec = TuningJob.parse(dict(job)).spec
    with _specs_lock:
        _specs[key] = spec
        while len(_specs) > SPEC_CACHE:
            _specs.popitem(last=False)
    return spec


def build_trial_pod(
    job: Mapping[str, Any],
    trial: Mapping[str, Any],
    metrics_address: str,
    default_image: DefaultImage | None = None,
    collector_image: str | None = None,
) -> dict[str, Any]:
    """The Pod that runs `trial`, from the job's trial template, owned by the Trial."""
    spec = job_spec(job)
    template = spec.trial_template
    if template is None:
        raise ValueError("spec.trialTemplate: required to run trials")
    params: dict[str, Any] = trial["spec"]["params"]
    name = trial["metadata"]["name"]
    job_name = job["metadata"]["name"]
    pod_meta = copy.deepcopy(template.pod_metadata)
    labels = {**pod_meta.get("labels", {}), JOB_LABEL: job_name, TRIAL_LABEL: name}
    if spec.collector.kind == "prometheus":
        labels[SCRAPED_LABEL] = "true"  # what the PodMonitor selects
    pod_spec = harden(copy.deepcopy(template.pod_spec))
    if template.job is None or pod_spec.get("restartPolicy") is None:
        pod_spec["restartPolicy"] = "Never"  # a Job's pod may restart OnFailure
    primary_name = template.primary()["name"]
    for container in pod_spec["containers"]:
        if default_image is not None:
            default_image.fill(container)
        if container["name"] != primary_name:
            continue
        for key in ("command", "args"):
            if key in container:
                container[key] = [substitute(str(v), params) for v in container[key]]
        env = [
            {**e, "value": substitute(e["value"], params)} if isinstance(e.get("value"), str) else e
            for e in container.get("env", [])
        ]
        collector = spec.collector
        port = collector.port if collector.kind == "prometheus" else None
        contract = trial_env(job_name, name, params, metrics_address, token="", metrics_port=port)
        if port is not None:
            _declare_port(container, port)
        if spec.checkpoints is not None:
            contract |= _mount_checkpoints(pod_spec, container, spec.checkpoints, job, trial)
        env = [e for e in env if e.get("name") not in contract]
        container["env"] = env + [
            {"name": k, "value": v} if k != TOKEN_ENV else _token_from_secret(name)
            for k, v in contract.items()
        ]
        if collector.kind == "file":
            _add_file_sidecar(pod_spec, container, spec, collector_image)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **{k: v for k, v in pod_meta.items() if k not in ("name", "namespace", "labels")},
            "name": name,
            "namespace": trial["metadata"].get("namespace", "default"),
            "labels": labels,
            "ownerReferences": [owner_reference(trial)],
        },
        "spec": pod_spec,
    }


def build_trial_job(
    job: Mapping[str, Any],
    trial: Mapping[str, Any],
    metrics_address: str,
    default_image: DefaultImage | None = None,
    collector_image: str | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job that runs `trial` (a `trialTemplate.job`), owned by the Trial: the user's
    Job, its pod template built as a trial pod is. An unset backoffLimit is 0 (a trial fails
    on its first failure, as a pod trial does), not Kubernetes' 6."""
    template = job_spec(job).trial_template
    assert template is not None and template.job is not None
    pod = build_trial_pod(job, trial, metrics_address, default_image, collector_image)
    user = copy.deepcopy(template.job)
    meta = user.get("metadata") or {}
    spec = {k: v for k, v in user["spec"].items() if k != "template"}
    spec.setdefault("backoffLimit", 0)
    pod_meta = {k: v for k, v in pod["metadata"].items() if k in ("labels", "annotations")}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": pod["metadata"]["name"],
            "namespace": pod["metadata"]["namespace"],
            "labels": {
                **(meta.get("labels") or {}),
                JOB_LABEL: job["metadata"]["name"],
                TRIAL_LABEL: pod["metadata"]["name"],
            },
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
            "ownerReferences": pod["metadata"]["ownerReferences"],
        },
        "spec": {**spec, "template": {"metadata": pod_meta, "spec": pod["spec"]}},
    }


def _add_file_sidecar(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    spec: TuningJobSpec,
    image: str | None,
) -> None:
    """The file collector: an emptyDir at the metrics file's directory in the primary container,
    and a native sidecar (an init container that restarts Always, from the operator's slim
    image) that tails the file there and reports with the trial's token. The kubelet stops it
    once the primary container has ended."""
    collector = spec.collector
    if image is None:
        raise ValueError(
            "spec.metricsCollector.kind file: the operator has no collector image "
            "(KUBETUNE_COLLECTOR_IMAGE; the Helm chart sets it)"
        )
    assert collector.path is not None
    directory = collector.path.rsplit("/", 1)[0] or "/"
    pod_spec.setdefault("volumes", []).append({"name": METRICS_VOLUME, "emptyDir": {}})
    mount = {"name": METRICS_VOLUME, "mountPath": directory}
    container.setdefault("volumeMounts", []).append(mount)
    names = [spec.objective.metric, *spec.objective.additional_metrics]
    command = ["python", "-m", "kubetune.collect", "--path", collector.path]
    command += ["--format", collector.format]
    if collector.step_metric:
        command += ["--step-metric", collector.step_metric]
    for expression in collector.filter:
        command += ["--filter", expression]
    shared = {"KUBETUNE_JOB", "KUBETUNE_TRIAL", "KUBETUNE_METRICS_ADDR", TOKEN_ENV}
    sidecar = {
        "name": SIDECAR,
        "image": image,
        "restartPolicy": "Always",
        "command": [*command, "--", *names],
        "env": [e for e in container["env"] if e.get("name") in shared],
        "volumeMounts": [{**mount, "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            **copy.deepcopy(CONTAINER_DEFAULTS),
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
    }
    pod_spec.setdefault("initContainers", []).append(sidecar)


def claim_name(job: Mapping[str, Any], checkpoints: Checkpoints) -> str:
    """The PersistentVolumeClaim holding a job's checkpoints; ValueError without storage."""
    storage = checkpoints.storage
    if storage is None:
        raise ValueError(
            "spec.checkpoints.storage: required on a cluster (persistentVolumeClaim or "
            "volumeClaimTemplate)"
        )
    if storage.persistent_volume_claim is not None:
        return storage.persistent_volume_claim.claim_name
    return f"{job['metadata']['name']}-checkpoints"


def build_checkpoint_claim(job: Mapping[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
    """The claim of `spec.checkpoints.storage.volumeClaimTemplate`, owned by the job (so deleted
    with it) unless `retain`."""
    template = checkpoints.storage.volume_claim_template if checkpoints.storage else None
    assert template is not None
    meta = job["metadata"]
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(job, checkpoints),
            "namespace": meta.get("namespace", "default"),
            "labels": {JOB_LABEL: meta["name"]},
        },
        "spec": {
            "accessModes": [m.value for m in template.access_modes],
            "resources": {"requests": {"storage": template.size}},
        },
    }
    if template.storage_class_name is not None:
        claim["spec"]["storageClassName"] = template.storage_class_name
    if not checkpoints.retain:
        claim["metadata"]["ownerReferences"] = [owner_reference(job)]
    return claim


def _mount_checkpoints(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    checkpoints: Checkpoints,
    job: Mapping[str, Any],
    trial: Mapping[str, Any],
) -> dict[str, str]:
    """Mount the trial's own subPath of the job's claim (and read-only, the one of the trial it
    continues); the checkpoint contract's env."""
    name = trial["metadata"]["name"]
    source = {"persistentVolumeClaim": {"claimName": claim_name(job, checkpoints)}}
    pod_spec.setdefault("volumes", []).append({"name": CHECKPOINT_VOLUME, **source})
    mounts = container.setdefault("volumeMounts", [])
    mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": checkpoints.mount_path, "subPath": name})
    env = {
        checkpoint.DIR_ENV: checkpoints.mount_path,
        checkpoint.KEEP_ENV: str(checkpoints.keep),
    }
    continues = trial["spec"].get("continues")
    if continues:
        mounts.append(
            {
                "name": CHECKPOINT_VOLUME,
                "mountPath": RESUME_MOUNT_PATH,
                "subPath": continues["trial"],
                "readOnly": True,
            }
        )
        env[checkpoint.RESUME_DIR_ENV] = RESUME_MOUNT_PATH
    resume = (trial.get("status") or {}).get("resumeStep")
    if resume is None and continues:
        resume = continues["step"]
    if resume is not None:
        env[checkpoint.RESUME_STEP_ENV] = str(resume)
    return env


def _token_from_secret(trial: str) -> dict[str, Any]:
    ref = {"name": token_secret_name(trial), "key": TOKEN_KEY}
    return {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": ref}}


CONTAINER_DEFAULTS: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def harden(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """Secure defaults for a trial pod's spec; every key the template sets keeps its value.

    Quantities in resources become strings, as the Kubernetes API types them."""
    pod_spec.setdefault("automountServiceAccountToken", False)
    pod_security = pod_spec.setdefault("securityContext", {})
    pod_security.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    for container in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
        security = container.setdefault("securityContext", {})
        for key, value in CONTAINER_DEFAULTS.items():
            security.setdefault(key, copy.deepcopy(value))
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            if isinstance(resources.get(kind), dict):
                resources[kind] = {k: _quantity(v) for k, v in resources[kind].items()}
    return pod_spec


def _quantity(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return str(value)


def build_event(
    obj: Mapping[str, Any], type_: str, reason: str, message: str, now: str, suffix: str
) -> dict[str, Any]:
    """A core/v1 Event about `obj` (Normal or Warning), as `kubectl describe` shows them."""
    meta = obj["metadata"]
    namespace = meta.get("namespace", "default")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{suffix}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "kubetune-operator"},
        "reportingComponent": "kubetune-operator",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def _declare_port(container: dict[str, Any], port: int) -> None:
    """Name the metrics port on the container (for a PodMonitor), unless the template did."""
    ports = container.setdefault("ports", [])
    if not any(p.get("containerPort") == port for p in ports if isinstance(p, dict)):
        ports.append({"name": METRICS_PORT_NAME, "containerPort": port, "protocol": "TCP"})
