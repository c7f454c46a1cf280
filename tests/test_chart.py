"""charts/kubetune through the real helm binary: lint, the values schema, the rendered objects
(offline Kubernetes schemas, scope, pod security, monitoring toggles, labels, images), the
generated copies and the manifests rendered from the chart, and the alert rules with promtool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubetune_operator.crds import generated, render
from kubetune_operator.rbac import operator_rules
from kubetune_operator.render import ChartError

from .chart import CHART, helm, rendered, template
from .conftest import ROOT
from .prometheus import PROMTOOL, RULES
from .test_pod_security import restricted_violations

SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
# The oldest Kubernetes the chart's kubeVersion admits, and the newest schemas at hand.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]


def scenario(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())  # type: ignore[no-any-return]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def named(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {n: d["spec"]["template"]["spec"] for n, d in named(docs, "Deployment").items()}
    specs.update({n: d["spec"] for n, d in named(docs, "Pod").items()})
    return specs


def container(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    return named(docs, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=lambda v: v.stem if v else "default")
def test_helm_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    out = helm(*args, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=lambda v: v.stem if v else "default")
def test_rendered_objects_pass_the_kubernetes_schemas(values: Path | None) -> None:
    docs = template(*(["--values", str(values)] if values else []))
    assert docs
    for doc in docs:
        if doc["kind"] in MONITORING_KINDS:  # Prometheus Operator CRDs: not in the schemas
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        for version in KUBE_VERSIONS:
            # strict: an unknown field (a typo in a template) fails as well
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_typo_in_values_is_rejected_by_the_schema() -> None:
    cases = {
        "replica": {"suggestion": {"replica": 3}},
        "watchNamespace": {"watchNamespace": ["a"]},
        "pullPolicy": {"images": {"operator": {"pullPolicy": "Sometimes"}}},
        "digest": {"images": {"operator": {"digest": "latest"}}},
        "Team A": {"watchNamespaces": ["Team A"]},
        "replicas": {"suggestion": {"replicas": 0}},
        "interval": {"monitoring": {"serviceMonitor": {"interval": "often"}}},
    }
    for word, values in cases.items():
        with pytest.raises(ChartError, match="values don't meet the specifications") as err:
            template(values=values)
        assert word in str(err.value) or "replicas" in str(err.value), err.value


def test_cluster_wide_by_default_and_roles_per_namespace_when_scoped() -> None:
    default = template()
    assert set(named(default, "ClusterRole")) == {"kubetune-operator"}
    assert named(default, "ClusterRole")["kubetune-operator"]["rules"] == operator_rules()
    assert not named(default, "Role")
    assert "--all-namespaces" in container(default, "kubetune-operator")["args"]

    docs = template(values=scenario("namespaced"))
    assert not named(docs, "ClusterRole") and not named(docs, "ClusterRoleBinding")
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert all(r["rules"] == operator_rules() for r in roles)
    for b in bindings:
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": "kubetune-operator", "namespace": "kubetune-system"}
        ]
    args = container(docs, "kubetune-operator")["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    # trial pods of the watched namespaces only may report
    policy = named(docs, "NetworkPolicy")["kubetune-operator"]
    source = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]
    assert source["values"] == ["team-a", "team-b"]


def test_the_dashboard_is_off_by_default_and_read_only_when_on() -> None:
    assert not [d for d in template() if "dashboard" in d["metadata"]["name"]]
    docs = template(values=scenario("dashboard"))
    (role,) = [d for d in docs if d["kind"] == "Role" and "dashboard" in d["metadata"]["name"]]
    assert role["metadata"]["namespace"] == "team-a"  # the first watched namespace
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}, verbs
    assert {r for rule in role["rules"] for r in rule["resources"]} == {
        "tuningjobs",
        "trials",
        "events",
        "pods",
        "pods/log",
    }
    args = container(docs, "kubetune-dashboard")["args"]
    assert "--namespace=team-a" in args and "--host=0.0.0.0" in args
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    assert ingress["spec"]["rules"][0]["host"] == "tune.example.com"
    service = named(docs, "Service")["kubetune-dashboard"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_no_rbac_or_service_accounts_when_turned_off() -> None:
    docs = template(values=scenario("minimal"))
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} & set(
        kinds(docs)
    )
    assert not {"CustomResourceDefinition", "NetworkPolicy", "PodDisruptionBudget", "Secret"} & set(
        kinds(docs)
    )
    assert pod_specs(docs)["kubetune-operator"]["serviceAccountName"] == "kubetune"


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=lambda v: v.stem if v else "default")
def test_every_pod_is_restricted(values: Path | None) -> None:
    specs = pod_specs(template(*(["--values", str(values)] if values else [])))
    expected = {"kubetune-operator", "kubetune-suggestion", "kubetune-test"}
    if values is not None and values.stem == "dashboard-values":
        expected.add("kubetune-dashboard")
    assert set(specs) == expected
    for name, spec in specs.items():
        assert restricted_violations(spec) == [], name
        assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in spec["containers"])
    assert specs["kubetune-suggestion"]["automountServiceAccountToken"] is False


def test_monitoring_objects_appear_only_when_enabled() -> None:
    extra = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"}
    default = template()
    assert not extra & set(kinds(default))
    assert "kubetune-operator-metrics" not in named(default, "Service")
    assert len(named(default, "NetworkPolicy")["kubetune-operator"]["spec"]["ingress"]) == 1
    for toggle, kind in [
        ("serviceMonitor", "ServiceMonitor"),
        ("podMonitor", "PodMonitor"),
        ("prometheusRule", "PrometheusRule"),
        ("grafanaDashboard", "ConfigMap"),
    ]:
        docs = template(values={"monitoring": {toggle: {"enabled": True}}})
        assert extra & set(kinds(docs)) == {kind}, toggle
    service_only = template(values={"monitoring": {"service": {"enabled": True}}})
    assert "kubetune-operator-metrics" in named(service_only, "Service")

    docs = template(values=scenario("monitoring"))
    assert named(docs, "PrometheusRule")["kubetune"]["spec"] == yaml.safe_load(RULES.read_text())
    dashboard = named(docs, "ConfigMap")["kubetune-dashboard"]
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["kubetune.json"]) == shipped
    monitor = named(docs, "ServiceMonitor")["kubetune-operator"]
    service = named(docs, "Service")["kubetune-operator-metrics"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    # Prometheus may reach /metrics once it is exposed
    ports = [
        r["ports"][0]["port"]
        for r in named(docs, "NetworkPolicy")["kubetune-operator"]["spec"]["ingress"]
    ]
    assert ports == [9090, 8090]


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=lambda v: v.stem if v else "default")
def test_every_object_carries_the_standard_labels(values: Path | None) -> None:
    for doc in template(*(["--values", str(values)] if values else [])):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("helm.sh/chart") == "kubetune-0.1.0", doc["metadata"]["name"]
        for key in ("name", "instance", "version", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, (doc["kind"], key)


def test_images_pull_secrets_and_scheduling() -> None:
    default = template()
    assert container(default, "kubetune-operator")["image"] == "ghcr.io/kubetune/operator:0.1.0"
    docs = template(values=scenario("custom-images"))
    digest = "sha256:" + "0123456789abcdef" * 4
    for spec in pod_specs(docs).values():
        assert (
            spec["containers"][0]["image"]
            == f"registry.example.com:5000/ml/kubetune-operator@{digest}"
        )
        assert spec["containers"][0]["imagePullPolicy"] == "Always"
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    env = {e["name"]: e.get("value") for e in container(docs, "kubetune-operator")["env"]}
    assert env["KUBETUNE_TRAINER_IMAGE"] == "ml/kubetune-trainer:0.1.0-cuda12"
    assert env["KUBETUNE_STATUS_INTERVAL"] == "1.0"
    operator = pod_specs(docs)["kubetune-operator"]
    assert operator["serviceAccountName"] == "tuner"
    assert operator["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert operator["priorityClassName"] == "system-cluster-critical"
    suggestion = named(docs, "Deployment")["kubetune-suggestion"]["spec"]
    assert suggestion["replicas"] == 3
    assert "podAntiAffinity" in suggestion["template"]["spec"]["affinity"]
    assert named(docs, "ServiceAccount")["tuner"]["metadata"]["annotations"]
    assert named(docs, "PodDisruptionBudget")["kubetune-suggestion"]["spec"]["minAvailable"] == 1


def test_crds_are_templated_and_kept_by_default() -> None:
    crds = named(template(), "CustomResourceDefinition")
    assert set(crds) == {"tuningjobs.kubetune.dev", "trials.kubetune.dev"}
    generated_crds = {
        yaml.safe_load(t)["metadata"]["name"]: yaml.safe_load(t) for t in render().values()
    }
    for name, crd in crds.items():
        assert crd["spec"] == generated_crds[name]["spec"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    unkept = named(template(values={"crds": {"keep": False}}), "CustomResourceDefinition")
    assert all("annotations" not in c["metadata"] for c in unkept.values())


def test_generated_copies_are_fresh() -> None:
    for path, text in generated(ROOT).items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `make crds`"


def test_manifests_rendered_from_the_chart_are_fresh() -> None:
    for path, text in rendered().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `make crds`"
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text()) if d]
    assert kinds(docs).count("CustomResourceDefinition") == 2
    assert "Pod" not in kinds(docs)  # no helm test hook in a kubectl install
    assert {"Namespace", "ClusterRole", "Deployment", "NetworkPolicy", "Service"} <= set(
        kinds(docs)
    )


def test_the_generated_suggestion_token_survives_a_re_render() -> None:
    docs = template()
    secret = named(docs, "Secret")["kubetune-suggestion-token"]
    assert len(secret["data"]["token"]) > 40
    mounted = pod_specs(docs)["kubetune-operator"]["volumes"][0]["secret"]["secretName"]
    assert mounted == "kubetune-suggestion-token"
    existing = template(values={"suggestion": {"auth": {"existingSecret": "mine"}}})
    assert not named(existing, "Secret")
    assert (
        pod_specs(existing)["kubetune-suggestion"]["volumes"][0]["secret"]["secretName"] == "mine"
    )


@pytest.mark.skipif(PROMTOOL is None, reason="no promtool (apt-get install prometheus)")
def test_alert_rules_check_and_pass_their_unit_tests() -> None:
    check = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 5 rules found" in check.stdout
    unit = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(ROOT / "tests" / "data" / "rules-test.yaml")],
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout + unit.stderr
