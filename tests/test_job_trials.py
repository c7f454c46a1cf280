"""Job trial templates and the file collector's sidecar, as the operator builds and reads them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubetune.engine import TrialLaunch
from kubetune.spec import SpecError, TrialState, TuningJob
from kubetune_operator.builders import build_trial, build_trial_job, build_trial_pod
from kubetune_operator.status import job_as_pod, observe_trial

POD = {
    "restartPolicy": "OnFailure",
    "containers": [
        {
            "name": "train",
            "image": "trainer",
            "command": ["python", "katib_train.py"],
            "args": ["--lr=${params.lr}"],
        },
    ],
}
JOB: dict[str, Any] = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TuningJob",
    "metadata": {"name": "k", "namespace": "ml", "uid": "u"},
    "spec": {
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "lr", "type": "float", "min": 0.01, "max": 0.1}],
        "algorithm": {"name": "random"},
        "trialTemplate": {
            "job": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "activeDeadlineSeconds": 600,
                    "template": {"metadata": {"labels": {"app": "x"}}, "spec": POD},
                },
            }
        },
    },
}


def trial_of(job: dict[str, Any]) -> dict[str, Any]:
    trial = build_trial(job, TrialLaunch("k-0", 0, {"lr": 0.05}, None))
    trial["metadata"]["uid"] = "trial-uid"
    return trial


def test_a_job_per_trial_with_the_trial_pod_inside() -> None:
    built = build_trial_job(JOB, trial_of(JOB), "10.0.0.1:9090")
    assert (built["apiVersion"], built["kind"]) == ("batch/v1", "Job")
    meta = built["metadata"]
    assert meta["name"] == "k-0" and meta["namespace"] == "ml"
    assert meta["labels"] == {"team": "a", "kubetune.dev/job": "k", "kubetune.dev/trial": "k-0"}
    assert meta["ownerReferences"][0]["kind"] == "Trial"
    spec = built["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 600
    template = spec["template"]
    assert template["metadata"]["labels"]["app"] == "x"
    assert template["metadata"]["labels"]["kubetune.dev/trial"] == "k-0"
    pod = template["spec"]
    assert pod["restartPolicy"] == "OnFailure"  # a Job's pod may restart
    (container,) = pod["containers"]
    assert container["args"] == ["--lr=0.05"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBETUNE_TRIAL"]["value"] == "k-0"
    assert env["KUBETUNE_TRIAL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "k-0-token"
    assert pod["automountServiceAccountToken"] is False  # hardened as a trial pod is
    kept = copy.deepcopy(JOB)
    kept["spec"]["trialTemplate"]["job"]["spec"]["backoffLimit"] = 2
    assert build_trial_job(kept, trial_of(kept), "a:1")["spec"]["backoffLimit"] == 2


def test_job_conditions_are_the_trial_result() -> None:
    running = {"metadata": {"name": "k-0"}, "status": {"active": 1}}
    assert job_as_pod(running)["status"]["phase"] == "Running"
    assert job_as_pod({"metadata": {}, "status": {}})["status"]["phase"] == "Pending"
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_as_pod(done)["status"]["phase"] == "Succeeded"
    failed = {
        "status": {
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                },
            ]
        }
    }
    trial = {"spec": {"params": {"lr": 0.05}}, "status": {"phase": "Running"}}
    seen = observe_trial(trial, job_as_pod(failed), "now")
    assert seen.state is TrialState.failed
    assert seen.status_patch is not None
    assert seen.status_patch["message"] == (
        "Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    )


def test_the_file_collector_adds_a_native_sidecar() -> None:
    job = copy.deepcopy(JOB)
    job["spec"]["metricsCollector"] = {
        "kind": "file",
        "path": "/var/log/katib/metrics.log",
        "stepMetric": "epoch",
        "filter": [r"(?P<name>\w+)=(?P<value>\S+)"],
    }
    pod = build_trial_pod(job, trial_of(job), "10.0.0.1:9090", collector_image="op:1")["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["image"] == "op:1"
    assert sidecar["command"] == [
        "python",
        "-m",
        "kubetune.collect",
        "--path",
        "/var/log/katib/metrics.log",
        "--format",
        "text",
        "--step-metric",
        "epoch",
        "--filter",
        r"(?P<name>\w+)=(?P<value>\S+)",
        "--",
        "loss",
    ]
    assert {e["name"] for e in sidecar["env"]} == {
        "KUBETUNE_JOB",
        "KUBETUNE_TRIAL",
        "KUBETUNE_METRICS_ADDR",
        "KUBETUNE_TRIAL_TOKEN",
    }
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "kubetune-metrics", "emptyDir": {}} in pod["volumes"]
    mount = {"name": "kubetune-metrics", "mountPath": "/var/log/katib"}
    assert mount in pod["containers"][0]["volumeMounts"]
    assert sidecar["volumeMounts"] == [{**mount, "readOnly": True}]
    with pytest.raises(ValueError, match="KUBETUNE_COLLECTOR_IMAGE"):
        build_trial_pod(job, trial_of(job), "10.0.0.1:9090")


@pytest.mark.parametrize(
    ("template", "path", "reason"),
    [
        ({"spec": {"containers": [{"name": "a"}]}, "job": {}}, "spec", "either spec"),
        ({}, "spec", "either spec"),
        ({"job": {"kind": "CronJob", "spec": {}}}, "job.kind", "must be Job"),
        ({"job": {"spec": {}}}, "job.spec.template.spec", "required"),
        (
            {
                "job": {
                    "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": []}}}
                }
            },
            "job.spec.template.spec.restartPolicy",
            "Never or OnFailure",
        ),
        (
            {"job": {"spec": {"backoffLimit": -1, "template": {"spec": {"containers": []}}}}},
            "job.spec.backoffLimit",
            ">= 0",
        ),
        (
            {"job": {"spec": {"template": {"spec": {"containers": []}}}}},
            "job.spec.template.spec.containers",
            "non-empty",
        ),
    ],
)
def test_job_template_errors_name_the_field(
    template: dict[str, Any], path: str, reason: str
) -> None:
    doc = copy.deepcopy(JOB)
    doc["spec"]["trialTemplate"] = template
    with pytest.raises(SpecError) as info:
        TuningJob.parse(doc)
    (error,) = info.value.errors
    assert error.path == f"spec.trialTemplate.{path}" and reason in error.message, error
