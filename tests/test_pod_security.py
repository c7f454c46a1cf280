"""The "restricted" Pod Security Standard, checked on the pods we ship and the pods we create,
and the install manifests' RBAC: the generated rules, no wildcards."""

from __future__ import annotations

from typing import Any

import yaml
from kubetune_operator.builders import build_trial_pod
from kubetune_operator.rbac import operator_rules

from .conftest import ROOT
from .test_builders import JOB, LAUNCH, build_trial

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from the "restricted" profile (Kubernetes Pod Security Standards)."""
    found = []
    pod = spec.get("securityContext") or {}
    found += [f"spec.{k}" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    for volume in spec.get("volumes", []):
        found += [f"volume {volume['name']}" for k in volume if k not in ALLOWED_VOLUMES | {"name"}]
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            found.append(f"{name}: capabilities.drop")
        if set((sc.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities.add")
        if not sc.get("runAsNonRoot", pod.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile") or pod.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile")
    return found


def install_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text()) if d]


def test_operator_and_suggestion_pods_are_restricted() -> None:
    deployments = [d for d in install_docs() if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "kubetune-operator",
        "kubetune-suggestion",
    }
    for d in deployments:
        assert restricted_violations(d["spec"]["template"]["spec"]) == [], d["metadata"]["name"]


def test_trial_pods_are_restricted_but_for_the_images_user() -> None:
    trial = build_trial(JOB, LAUNCH)
    trial["metadata"]["uid"] = "u"
    spec = build_trial_pod(JOB, trial, "m:1")["spec"]
    # runAsNonRoot stays the template's choice: a default would break images that run as root
    assert restricted_violations(spec) == ["sidecar: runAsNonRoot", "trainer: runAsNonRoot"]
    assert spec["automountServiceAccountToken"] is False


def test_install_rbac_is_the_generated_rules_without_wildcards() -> None:
    roles = [d for d in install_docs() if d["kind"] in ("ClusterRole", "Role")]
    assert [r["rules"] for r in roles] == [operator_rules()]
    for rule in operator_rules():
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    secrets = [r for r in operator_rules() if "secrets" in r["resources"]]
    assert [r["verbs"] for r in secrets] == [["create"]]  # tokens are written, never read
