"""The operator end to end: kopf (KopfRunner, or the real `kubetune-operator` process) against the
real control plane (tests/cluster), real kubectl, the real trainer run by the test node's kubelet,
real gRPC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubetune_operator.rbac import build_rbac, render_rbac

from .conftest import EXAMPLES, ROOT
from .harness import (
    OBJECTIVE,
    Cluster,
    free_port,
    persistent_volume,
    tuning_job,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_example_job_runs_to_the_end_with_kubectl(cluster: Cluster) -> None:
    doc = yaml.safe_load((EXAMPLES / "digits-bayesian.yaml").read_text())
    doc["spec"].update(maxTrials=3, parallelism=2, resource={"name": "epochs", "min": 1, "max": 3})
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(doc)
        job = cluster.wait_phase("digits-bayesian", "Succeeded")
        table = cluster.kubectl("get", "tj")
        trials_table = cluster.kubectl("get", "trials")
        by_category = cluster.kubectl("get", "kubetune")  # both CRDs are in that category
    assert runner.exception is None, runner.output[-3000:]
    status = job["status"]
    assert status["reason"] == "MaxTrialsReached" and status["progress"] == "3/3"
    assert "Succeeded" in table and "3/3" in table
    trials = cluster.objects("trials")
    assert sorted(trials) == [f"digits-bayesian-{i}" for i in range(3)]
    assert all(f"digits-bayesian-{i}" in trials_table for i in range(3))
    assert "tuningjob.kubetune.dev/digits-bayesian" in by_category
    assert "trial.kubetune.dev/digits-bayesian-0" in by_category
    finished = {n: t["status"] for n, t in trials.items()}
    assert all(s["phase"] in ("Succeeded", "Stopped") for s in finished.values())
    best = max(finished.items(), key=lambda kv: kv[1].get("objective", -1))
    assert status["bestTrial"]["name"] == best[0]
    assert status["bestTrial"]["objective"] == best[1]["objective"]
    assert status["bestTrial"]["params"] == trials[best[0]]["spec"]["params"]
    for name, s in finished.items():  # every epoch's report is in the status
        if s["phase"] == "Succeeded":
            assert [p["step"] for p in s["curve"]] == [1, 2, 3], name
    wait_for(lambda: not cluster.objects("pods", ""), timeout=60, what="pods released")
    reasons = [e["reason"] for e in cluster.objects("events", "").values()]
    assert reasons.count("TrialCreated") == 3 and "MaxTrialsReached" in reasons
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Running"]["status"] == "False"


def asha_job(name: str, **extra: Any) -> dict[str, Any]:
    """Two trials, a good and a hopeless learning rate: ASHA stops the second at its first rung."""
    return tuning_job(
        name,
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "categorical", "values": [0.05, 0.00001]}],
            "algorithm": {"name": "grid"},
            "earlyStopping": {"name": "asha", "settings": {"reductionFactor": 3}},
            "resource": {"name": "epochs", "min": 1, "max": 9},
            "maxTrials": 2,
            "parallelism": 1,
            **extra,
        },
        ["--lr=${params.lr}", "--epochs=${params.epochs}"],
    )


def barrier(cluster: Cluster, like: dict[str, Any]) -> None:
    """Wait until the operator has handled a later job (one that only the operator finds invalid,
    min > max, so it fails at once): whatever it was going to do about earlier events, it has
    done by then."""
    doc = {**like, "metadata": {"name": f"barrier-{time.monotonic_ns()}"}}
    wrong = [{"name": "lr", "type": "float", "min": 0.5, "max": 0.1}]
    doc["spec"] = {**like["spec"], "parameters": wrong}
    cluster.apply(doc)
    cluster.wait_phase(doc["metadata"]["name"], "Failed", timeout=60)


def test_early_stopping_stops_the_bad_trial_and_deletes_its_pod(cluster: Cluster) -> None:
    doc = asha_job("asha", retainPods=True)
    with KopfRunner(cluster.operator):
        cluster.apply(doc)
        cluster.wait_phase("asha", "Succeeded")
        # retainPods keeps the finished trial's pod; the stopped one's goes (gracefully)
        wait_for(lambda: "asha-1" not in cluster.objects("pods", ""), what="asha-1 deleted")
    trials = cluster.objects("trials")
    good, bad = trials["asha-0"]["status"], trials["asha-1"]["status"]
    assert good["phase"] == "Succeeded" and len(good["curve"]) == 9
    assert bad["phase"] == "Stopped" and len(bad["curve"]) < 3
    assert bad["message"].startswith("early stopping: value")
    assert "asha-0" in cluster.objects("pods", "")
    assert "asha-1" not in cluster.running()


def test_failed_pod_is_a_failed_trial_and_max_failed_trials_fails_the_job(
    cluster: Cluster,
) -> None:
    doc = tuning_job(
        "crash",
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "fail", "type": "categorical", "values": [2, -1, 3]}],
            "algorithm": {"name": "grid"},
            "maxTrials": 3,
            "maxFailedTrials": 0,
        },
        ["--fail-at-epoch=${params.fail}", "--epochs=3"],
    )
    with KopfRunner(cluster.operator):
        cluster.apply(doc)
        job = cluster.wait_phase("crash", "Failed")
    assert job["status"]["reason"] == "TooManyFailedTrials"
    (trial,) = cluster.objects("trials").values()
    assert trial["status"]["phase"] == "Failed" and trial["status"]["reason"] == "PodFailed"
    assert "exited with code 1" in trial["status"]["message"]
    assert len(trial["status"]["curve"]) == 1  # the epoch before the crash was kept
    warnings = [e for e in cluster.objects("events", "").values() if e["type"] == "Warning"]
    assert {"TrialFailed", "TooManyFailedTrials"} <= {e["reason"] for e in warnings}


def test_invalid_spec_fails_the_job_with_the_field_path(cluster: Cluster) -> None:
    doc = tuning_job(
        "bad",
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "float", "min": 0.5, "max": 0.1}],
            "algorithm": {"name": "random"},
        },
        ["--lr=${params.lr}"],
    )
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(doc)
        job = cluster.wait_phase("bad", "Failed", timeout=30)
        barrier(cluster, doc)  # the operator stays up and does not retry
        assert (
            cluster.job("bad")["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]
        )
    assert runner.exception is None
    assert job["status"]["reason"] == "InvalidSpec"
    assert "spec.parameters[0].max" in job["status"]["message"]
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and "spec.parameters[0].max" in failed["message"]
    assert cluster.objects("trials") == {}
    assert runner.output.count("Traceback") == 0


def test_deleting_the_job_removes_trials_and_pods(cluster: Cluster) -> None:
    doc = tuning_job(
        "gone",
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
            "algorithm": {"name": "random"},
            "maxTrials": 4,
            "parallelism": 2,
        },
        ["--lr=${params.lr}", "--epochs=500"],
    )
    with KopfRunner(cluster.operator):
        cluster.apply(doc)
        wait_for(lambda: len(cluster.running()) == 2, what="two running pods")
        cluster.kubectl("delete", "tuningjob", "gone")
        wait_for(
            lambda: not cluster.objects("trials") and not cluster.objects("pods", ""),
            timeout=30,
            what="garbage collection",
        )
        wait_for(lambda: not cluster.running(), timeout=60, what="processes ended")
        barrier(cluster, doc)
        assert cluster.objects("trials") == {}  # and the operator did not recreate anything
    assert all(cluster.signalled(p)[0] == "SIGTERM" for p in ("gone-0", "gone-1"))


def _start_operator(env: dict[str, str], log: Path, namespace: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kubetune_operator.main", "--namespace", namespace],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_operator_killed_mid_job_resumes_without_duplicates_or_lost_metrics(
    cluster: Cluster,
) -> None:
    doc = tuning_job(
        "restart",
        {
            "objective": OBJECTIVE,
            "parameters": [
                {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "scale": "log"}
            ],
            "algorithm": {"name": "bayesian", "seed": 3},
            "resource": {"name": "epochs", "min": 1, "max": 6},
            "maxTrials": 4,
            "parallelism": 2,
        },
        ["--lr=${params.lr}", "--epochs=${params.epochs}"],
    )
    env = {**os.environ}
    log = cluster.tmp / "operator.log"
    operator = _start_operator(env, log, cluster.namespace)
    try:
        cluster.apply(doc)

        def reported() -> bool:
            return any(t.get("status", {}).get("curve") for t in cluster.objects("trials").values())

        wait_for(reported, what="a first acknowledged report")
        operator.send_signal(signal.SIGKILL)  # no cleanup, no flush
        operator.wait(10)
        operator = _start_operator(env, log, cluster.namespace)
        job = cluster.wait_phase("restart", "Succeeded")
    finally:
        operator.terminate()
        operator.wait(20)
    trials = cluster.objects("trials")
    assert sorted(trials) == [f"restart-{i}" for i in range(4)], log.read_text()[-3000:]
    assert sorted(cluster.started()) == sorted(trials)  # each trial's pod ran once
    for name, trial in trials.items():
        steps = [p["step"] for p in trial["status"]["curve"]]
        assert trial["status"]["phase"] == "Succeeded", name
        assert steps == [1, 2, 3, 4, 5, 6], name  # nothing acknowledged was lost
    assert job["status"]["progress"] == "4/4"
    params = [json.dumps(t["spec"]["params"], sort_keys=True) for t in trials.values()]
    assert len(set(params)) == 4


def test_suggestion_service_outage_is_reported_and_retried(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("KUBETUNE_SUGGESTION_ADDRESS", address)
    doc = tuning_job(
        "outage",
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
            "algorithm": {"name": "random"},
            "maxTrials": 2,
            "parallelism": 2,
        },
        ["--lr=${params.lr}", "--epochs=1"],
    )
    service = None
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(doc)

        def unavailable() -> bool:
            conditions = cluster.job("outage").get("status", {}).get("conditions", [])
            return any(
                c["type"] == "SuggestionsAvailable" and c["status"] == "False" for c in conditions
            )

        wait_for(unavailable, timeout=30, what="the SuggestionsAvailable=False condition")
        assert cluster.objects("trials") == {}
        service = subprocess.Popen(
            [sys.executable, "-m", "kubetune_operator.suggestion_main", "--address", address]
        )
        try:
            job = cluster.wait_phase("outage", "Succeeded")
        finally:
            service.terminate()
            service.wait(10)
    assert runner.exception is None
    conditions = {c["type"]: c for c in job["status"]["conditions"]}
    assert conditions["SuggestionsAvailable"]["status"] == "True"
    assert len(cluster.objects("trials")) == 2


def test_install_yaml_applies_with_kubectl(cluster: Cluster) -> None:
    install = str(ROOT / "manifests" / "install.yaml")
    wait_for(  # a Helm test may have left it terminating
        lambda: "kubetune-system" not in cluster.objects("namespaces", "", cluster_scope=True),
        120,
        "namespace kubetune-system gone",
    )
    try:
        out = cluster.kubectl("apply", "-f", install)
        assert "deployment.apps/kubetune-operator created" in out
        assert "clusterrole.rbac.authorization.k8s.io/kubetune-operator created" in out
        assert "service/kubetune-metrics created" in out
    finally:  # its operator watches every namespace: it must not outlive this test
        cluster.kubectl("delete", "-f", install, "--ignore-not-found", "--wait", "--timeout=120s")


OPERATOR_USER = "system:serviceaccount:kubetune-system:kubetune-operator"
# granted, but only used on a rare path: a restart between creating a Trial and its Secret
RARELY_USED = {("kubetune.dev", "trials", "patch")}


@pytest.mark.parametrize("scope", ["cluster-wide", "namespaced"])
def test_operator_uses_exactly_the_rbac_it_is_granted(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, scope: str
) -> None:
    """The operator runs as its ServiceAccount with exactly the generated rules; the real
    authorizer judges every call, and the audit log says which it made."""
    namespaces = None if scope == "cluster-wide" else [cluster.namespace]
    system = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubetune-system"}}
    (cluster.tmp / "system.yaml").write_text(yaml.safe_dump(system))
    cluster.kubectl("apply", "-f", str(cluster.tmp / "system.yaml"))
    rbac = cluster.tmp / "rbac.yaml"
    rbac.write_text(render_rbac(namespaces))
    cluster.kubectl("apply", "-f", str(rbac))
    token = cluster.kubectl("create", "token", "kubetune-operator", "-n", "kubetune-system")
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["users"][0]["user"] = {"token": token.strip()}
    (cluster.tmp / "operator-kubeconfig").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(cluster.tmp / "operator-kubeconfig"))
    scope_args = ["--all-namespaces"] if namespaces is None else ["-n", cluster.namespace]
    volume = f"kt-{cluster.namespace}"[:63]  # a claim the operator creates: PVC create is used
    cluster.api.request("POST", "/api/v1/persistentvolumes", persistent_volume(volume, cluster.tmp))
    storage = {"volumeClaimTemplate": {"storageClassName": volume, "size": "1Gi"}}
    doc = asha_job("rbac", checkpoints={"storage": storage})
    since = cluster.audit_mark()
    try:
        with KopfRunner(["run", "--standalone", *scope_args, "-m", "kubetune_operator.handlers"]):
            cluster.apply(doc)
            cluster.apply(printed_job_trials("rbac-jobs"))  # Jobs, and the pod log followed
            job = cluster.wait_phase("rbac", "Succeeded")
            cluster.wait_phase("rbac-jobs", "Succeeded")
            wait_for(lambda: not cluster.objects("pods", ""), what="pods released")
    finally:
        cluster.kubectl("delete", "-f", str(rbac))
        cluster.api.request("DELETE", f"/api/v1/persistentvolumes/{volume}")
    calls = [c for c in cluster.audit(OPERATOR_USER, since) if "objectRef" in c]  # not /version
    denied = [c for c in calls if c.get("responseStatus", {}).get("code") == 403]
    assert denied == []
    assert job["status"]["trials"]["stopped"] == 1  # the stop path (pod deletion) was taken
    granted = {
        (group, resource, verb)
        for d in build_rbac(namespaces)
        for rule in d.get("rules", [])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    used = {access(c) for c in calls}
    assert used <= granted
    assert granted - used == RARELY_USED, "granted but never used"


def printed_job_trials(name: str) -> dict[str, Any]:
    """Two trials as batch/v1 Jobs whose trainer only prints (the stdout collector)."""
    container = {
        "name": "training",
        "image": "kubetune/trainer:latest",
        "command": ["python", "katib_train.py"],
        "args": ["--lr=${params.lr}", "--epochs=2"],
    }
    pod = {"restartPolicy": "Never", "containers": [container]}
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "accuracy", "direction": "maximize"},
            "parameters": [{"name": "lr", "type": "float", "min": 0.01, "max": 0.1}],
            "algorithm": {"name": "random"},
            "maxTrials": 2,
            "parallelism": 2,
            "metricsCollector": {"kind": "stdout"},
            "trialTemplate": {"job": {"spec": {"template": {"spec": pod}}}},
        },
    }


def access(call: dict[str, Any]) -> tuple[str, str, str]:
    """(API group, resource[/subresource], verb) of an audited request."""
    ref = call["objectRef"]
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return ref.get("apiGroup", ""), resource, call["verb"]
