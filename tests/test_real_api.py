"""What only a real API server can check (tests/cluster): our CRDs' schemas, printer columns and
field docs; validation and pruning; garbage collection by the controller manager; Pod Security
admission; and the operator across an API server restart and an etcd restart."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from .harness import OBJECTIVE, Cluster, tuning_job, wait_for

pytestmark = pytest.mark.slow


def job_doc(name: str, **spec: Any) -> dict[str, Any]:
    return tuning_job(
        name,
        {
            "objective": dict(OBJECTIVE),
            "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
            "algorithm": {"name": "random"},
            **spec,
        },
        ["--lr=${params.lr}", "--epochs=2"],
    )


def apply_refused(cluster: Cluster, doc: dict[str, Any], *flags: str) -> str:
    path = cluster.tmp / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = cluster.kubectl("apply", *flags, "-f", str(path), check=False)
    assert result == "", f"accepted: {result}"
    return cluster.last_error


def test_crds_are_accepted_and_kubectl_explain_prints_our_field_docs(cluster: Cluster) -> None:
    crds = json.loads(cluster.kubectl("get", "crd", "-o", "json"))["items"]
    ours = {c["metadata"]["name"]: c for c in crds if c["spec"]["group"] == "kubetune.dev"}
    assert set(ours) == {"tuningjobs.kubetune.dev", "trials.kubetune.dev"}
    for crd in ours.values():
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
        assert conditions.get("NonStructuralSchema") is None  # a structural schema
    # the API server publishes a new CRD's OpenAPI a moment after it is established
    explained = wait_for(
        lambda: cluster.kubectl("explain", "tuningjob.spec.parameters", check=False),
        timeout=60,
        what="kubectl explain to find TuningJobs",
    )
    assert "The search space." in explained
    assert "Parameter name, used as ${params.NAME}." in explained
    assert "Sampling scale: linear or log." in explained


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"maxTrials": "ten"}, "spec.maxTrials", 'Invalid value: "string"'),
        ({"algorithm": {"name": "annealing"}}, "spec.algorithm.name", "Unsupported value"),
        ({"objective": {"direction": "maximize"}}, "spec.objective.metric", "Required value"),
        ({"parallelism": 0}, "spec.parallelism", "greater than or equal to 1"),
    ],
)
def test_the_api_server_rejects_an_invalid_tuningjob_naming_the_field(
    cluster: Cluster, change: dict[str, Any], field: str, reason: str
) -> None:
    doc = job_doc("invalid")
    doc["spec"].update(change)
    message = apply_refused(cluster, doc)
    assert field in message and reason in message, message
    assert "invalid" not in cluster.objects("tuningjobs")


def test_unknown_fields_are_rejected_by_kubectl_and_pruned_when_not_validated(
    cluster: Cluster,
) -> None:
    doc = job_doc("extra")
    doc["spec"]["bogus"] = 1
    doc["spec"]["objective"]["tolerance"] = 0.1
    message = apply_refused(cluster, doc)  # kubectl asks for strict field validation
    assert 'unknown field "spec.bogus"' in message, message
    path = cluster.tmp / "extra.yaml"
    cluster.kubectl("apply", "--validate=false", "-f", str(path))
    stored = cluster.job("extra")["spec"]
    assert "bogus" not in stored and "tolerance" not in stored["objective"]  # pruned
    assert stored["objective"] == OBJECTIVE and "maxTrials" not in stored  # no server defaults


def test_printer_columns_of_tuningjobs_and_trials(cluster: Cluster) -> None:
    with KopfRunner(cluster.operator):
        cluster.apply(job_doc("cols", maxTrials=2, parallelism=2))
        cluster.wait_phase("cols", "Succeeded")
        jobs = cluster.kubectl("get", "tj").splitlines()
        trials = cluster.kubectl("get", "trials").splitlines()
    assert jobs[0].split() == ["NAME", "PHASE", "TRIALS", "RUNNING", "BEST", "FRONT", "AGE"]
    name, phase, progress, running, best, _ = jobs[1].split()  # FRONT: empty for one objective
    assert (name, phase, progress, running) == ("cols", "Succeeded", "2/2", "0")
    assert best == str(cluster.job("cols")["status"]["bestTrial"]["objective"])
    assert trials[0].split() == ["NAME", "PHASE", "OBJECTIVE", "PARAMS", "AGE"]
    rows = [line.split() for line in trials[1:]]
    assert [r[0] for r in rows] == ["cols-0", "cols-1"]
    assert all(r[1] == "Succeeded" and r[3].startswith("lr=") for r in rows)


def owned(cluster: Cluster, job: str) -> list[str]:
    found = []
    for plural, group in (("trials", "kubetune.dev"), ("pods", ""), ("secrets", "")):
        for name, obj in cluster.objects(plural, group).items():
            if (obj["metadata"].get("labels") or {}).get("kubetune.dev/job") == job:
                found.append(f"{plural}/{name}")
    return found


def test_foreground_deletion_removes_trials_pods_and_secrets_through_the_garbage_collector(
    cluster: Cluster,
) -> None:
    doc = job_doc("fg", maxTrials=4, parallelism=2)
    doc["spec"]["trialTemplate"]["spec"]["containers"][0]["args"][-1] = "--epochs=500"
    with KopfRunner(cluster.operator):
        cluster.apply(doc)
        wait_for(lambda: len(cluster.running()) == 2, what="two running trial pods")
        before = owned(cluster, "fg")
        assert {o.split("/")[0] for o in before} == {"trials", "pods", "secrets"}, before
        cluster.kubectl("delete", "tj", "fg", "--cascade=foreground", "--timeout=120s")
        # foreground: the job went only after every dependent that blocks it
        assert "fg" not in cluster.objects("tuningjobs")
        wait_for(lambda: not owned(cluster, "fg"), timeout=60, what="the dependents gone")
        wait_for(lambda: not cluster.running(), timeout=60, what="the trial processes ended")
    deletes = [
        e["requestURI"].rsplit("/", 2)[-2:]
        for e in cluster.plane.audit_events()
        if e["verb"] == "delete" and f"/namespaces/{cluster.namespace}/" in e["requestURI"]
    ]
    # kubectl's one delete; neither kubectl nor the operator deleted a dependent: the collector
    # (whose requests the audit policy leaves out) did
    assert deletes == [["tuningjobs", "fg"]], deletes


def test_pod_security_restricted_admits_hardened_trials_and_refuses_a_privileged_one(
    cluster: Cluster,
) -> None:
    cluster.kubectl(
        "label", "namespace", cluster.namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    hardened = job_doc("hardened", maxTrials=1)
    pod = hardened["spec"]["trialTemplate"]["spec"]
    pod["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    privileged = job_doc("privileged", maxTrials=1)
    privileged["spec"]["trialTemplate"]["spec"]["containers"][0]["securityContext"] = {
        "privileged": True,
        "allowPrivilegeEscalation": True,
    }
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(hardened)
        cluster.apply(privileged)
        done = cluster.wait_phase("hardened", "Succeeded")
        failed = cluster.wait_phase("privileged", "Failed", timeout=60)
    assert runner.exception is None
    assert done["status"]["progress"] == "1/1"
    status = failed["status"]
    assert status["reason"] == "PodRejected"
    assert 'violates PodSecurity "restricted:latest"' in status["message"], status["message"]
    assert "privileged" in status["message"]
    condition = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "PodRejected" and "PodSecurity" in condition["message"]
    assert not [p for p in cluster.objects("pods", "") if p.startswith("privileged")]


def test_the_operator_survives_an_api_server_and_an_etcd_restart_mid_job(
    cluster: Cluster,
) -> None:
    doc = tuning_job(
        "outages",
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
            "algorithm": {"name": "random", "seed": 4},
            "maxTrials": 4,
            "parallelism": 2,
        },
        ["--lr=${params.lr}", "--epochs=6"],
    )

    def steps_reported() -> int:
        return sum(
            len(t.get("status", {}).get("curve", [])) for t in cluster.objects("trials").values()
        )

    with KopfRunner(cluster.operator) as runner:
        cluster.apply(doc)
        wait_for(lambda: steps_reported() >= 1, what="a first acknowledged report")
        cluster.plane.restart("kube-apiserver", down_for=2)
        wait_for(lambda: steps_reported() >= 6, what="reports after the API server restart")
        cluster.plane.restart("etcd", down_for=2)
        job = cluster.wait_phase("outages", "Succeeded", timeout=300)
    assert runner.exception is None
    trials = cluster.objects("trials")
    assert sorted(trials) == [f"outages-{i}" for i in range(4)]
    assert sorted(cluster.started()) == sorted(trials)  # each trial's pod ran once
    for name, trial in trials.items():
        assert trial["status"]["phase"] == "Succeeded", name
        assert [p["step"] for p in trial["status"]["curve"]] == [1, 2, 3, 4, 5, 6], name
    assert job["status"]["progress"] == "4/4"
