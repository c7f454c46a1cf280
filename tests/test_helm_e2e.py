"""The chart with the real helm binary against the real control plane (tests/cluster):
`helm install --wait` runs the chart's operator and suggestion service as pods (the test node
runs their commands locally, in pod network namespaces, with their service accounts' tokens), a
TuningJob runs to the end through them, then `helm upgrade` with changed values, `helm test` and
`helm uninstall`, with the CRDs kept or not as crds.keep says. The real authorizer judges the
chart's RBAC; the audit log shows any refusal."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .browser import browser, new_tab
from .chart import CHART
from .conftest import ROOT
from .harness import OBJECTIVE, Cluster, remove_namespace, wait_for
from .tools import ensure_tools

pytestmark = pytest.mark.slow
NS = "kubetune-system"
QUICKSTART = "## The same on a cluster"
TRAINER = "registry.example.com/ml/trainer:v7"
OPERATOR_USER = f"system:serviceaccount:{NS}:kubetune-operator"


class HelmCluster(Cluster):
    def helm(self, *args: str) -> str:
        home = self.tmp / "helm"
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        result = subprocess.run(
            [str(ensure_tools()["helm"]), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=400,
        )
        if result.returncode != 0:
            logs = "".join(
                f"\n--- {p.parent.parent.name} {p.name}\n{p.read_text()[-2000:]}"
                for p in sorted((self.plane.root / "node" / "pods").glob("*/logs/*.log"))
            )
            raise AssertionError(f"helm {' '.join(args)}: {result.stderr}{logs}")
        return result.stdout

    def cluster_scoped(self, plural: str, group: str, version: str = "v1") -> dict[str, Any]:
        listed = self.api.request("GET", f"/apis/{group}/{version}/{plural}")
        return {o["metadata"]["name"]: o for o in listed["items"]}

    def crds(self) -> set[str]:
        found = self.cluster_scoped("customresourcedefinitions", "apiextensions.k8s.io")
        return {name for name in found if name.endswith(".kubetune.dev")}

    def refused(self, since: int) -> list[str]:
        """The operator's requests that the authorizer refused since an audit mark."""
        return [
            e["requestURI"]
            for e in self.audit(OPERATOR_USER, since)
            if e.get("responseStatus", {}).get("code") == 403
        ]

    def pods(self, component: str) -> dict[str, dict[str, Any]]:
        return {
            n: p
            for n, p in self.objects("pods", "", NS).items()
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
            and not p["metadata"].get("deletionTimestamp")
        }


@pytest.fixture
def helm_cluster(cluster: Cluster) -> Iterator[HelmCluster]:
    """The test's namespace on the control plane, without the CRDs: the chart installs them.
    The release's namespace from an earlier test is gone first (its deletion is not awaited at
    the end of a test, so that other tests need not wait for it)."""
    c = HelmCluster(cluster.plane, cluster.namespace, cluster.tmp)

    def system_gone() -> bool:
        return NS not in c.objects("namespaces", "", cluster_scope=True)

    wait_for(system_gone, 120, f"namespace {NS} gone")
    c.kubectl("delete", "-f", str(ROOT / "manifests" / "crds"), "--wait", "--ignore-not-found")
    try:
        yield c
    finally:
        if not system_gone():
            remove_namespace(c, NS)


def readme_quickstart() -> list[str]:
    """The command lines of the README's cluster quickstart, as documented."""
    section = (ROOT / "README.md").read_text().split(QUICKSTART, 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()


def readme_quickstart_job() -> dict[str, Any]:
    """The manifest the quickstart submits."""
    (line,) = [ln for ln in readme_quickstart() if " submit -f " in ln]
    path = shlex.split(line.split("#", 1)[0]).pop(shlex.split(line).index("-f") + 1)
    return dict(yaml.safe_load((ROOT / path).read_text()))


def readme_install() -> list[str]:
    """The `helm install` line of the README's cluster quickstart, as documented."""
    (line,) = [ln for ln in readme_quickstart() if ln.startswith("helm install ")]
    argv = shlex.split(line.split("#", 1)[0])
    assert argv[:4] == ["helm", "install", "kubetune", "charts/kubetune"], argv
    return [argv[0], argv[1], argv[2], str(ROOT / argv[3]), *argv[4:]]


def small_job(name: str) -> dict[str, Any]:
    """Two trials of the real trainer; the template names no image: the chart's trainer image."""
    container = {
        "name": "trainer",
        "command": ["python", "train.py"],
        "args": ["--units=16", "--hidden-layers=1", "--lr=${params.lr}", "--epochs=2"],
    }
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "categorical", "values": [0.05, 0.01]}],
            "algorithm": {"name": "grid"},
            "maxTrials": 2,
            "parallelism": 2,
            "trialTemplate": {"spec": {"containers": [container]}},
            "retainPods": True,
        },
    }


def test_helm_install_run_upgrade_test_and_uninstall(helm_cluster: HelmCluster) -> None:
    c = helm_cluster
    values = c.tmp / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "images": {
                    "trainer": {
                        "registry": "registry.example.com",
                        "repository": "ml/trainer",
                        "tag": "v7",
                    }
                }
            }
        )
    )
    notes = c.helm(*readme_install()[1:], "--values", str(values), "--timeout", "240s")
    assert f"helm test kubetune -n {NS}" in notes and "kubetune submit" in notes
    deployments = c.objects("deployments", "apps", NS)
    for name, replicas in [("kubetune-operator", 1), ("kubetune-suggestion", 2)]:
        status = deployments[name]["status"]
        assert status["readyReplicas"] == status["updatedReplicas"] == replicas, status
    assert "kubetune-suggestion" in c.objects("poddisruptionbudgets", "policy", NS)
    (operator,) = c.pods("operator")
    assert (
        "--all-namespaces" in c.objects("pods", "", NS)[operator]["spec"]["containers"][0]["args"]
    )

    # the chart's operator (a pod, as its service account, under the chart's RBAC) runs the
    # README quickstart's job (its template names no image: the chart's trainer image)
    quickstart = readme_quickstart_job()
    quickstart["spec"] |= {"maxTrials": 2, "retainPods": True}
    since = c.audit_mark()
    c.apply(quickstart)
    job = c.wait_phase("digits-kind", "Succeeded", timeout=240)
    assert job["status"]["progress"] == "2/2", job["status"]
    trial_pods = [
        p for p in c.objects("pods", "").values() if "kubetune.dev/trial" in p["metadata"]["labels"]
    ]
    assert trial_pods and all(p["spec"]["containers"][0]["image"] == TRAINER for p in trial_pods)
    assert c.refused(since) == []

    token = c.objects("secrets", "", NS)["kubetune-suggestion-token"]["data"]["token"]
    c.helm(
        "upgrade",
        "kubetune",
        str(CHART),
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "suggestion.replicas=1",
        "--set",
        "operator.verbose=true",
        "--wait",
        "--timeout",
        "240s",
    )
    assert "kubetune-suggestion" not in c.objects("poddisruptionbudgets", "policy", NS)
    assert len(c.pods("suggestion")) == 1
    (upgraded,) = c.pods("operator")
    assert upgraded != operator
    assert "--verbose" in c.objects("pods", "", NS)[upgraded]["spec"]["containers"][0]["args"]
    assert c.objects("secrets", "", NS)["kubetune-suggestion-token"]["data"]["token"] == token
    assert len(base64.b64decode(token)) >= 32

    out = c.helm("test", "kubetune", "-n", NS, "--logs")
    assert "ok: suggestion service" in out and "ok: CRDs in kubetune.dev/v1alpha1" in out, out

    c.helm("uninstall", "kubetune", "-n", NS, "--wait", "--timeout", "120s")
    wait_for(lambda: not c.objects("deployments", "apps", NS), 60, "the Deployments gone")
    wait_for(lambda: not c.pods("operator") and not c.pods("suggestion"), 120, "the pods gone")
    assert c.crds() == {"tuningjobs.kubetune.dev", "trials.kubetune.dev"}  # crds.keep
    assert "digits-kind" in c.objects("tuningjobs")


def test_uninstall_removes_the_crds_unless_kept(helm_cluster: HelmCluster) -> None:
    c = helm_cluster
    c.helm(
        "install",
        "kubetune",
        str(CHART),
        "-n",
        NS,
        "--create-namespace",
        "--set",
        "crds.keep=false",
        "--set",
        "suggestion.replicas=1",
        "--wait",
        "--timeout",
        "240s",
    )
    assert len(c.crds()) == 2
    c.helm("uninstall", "kubetune", "-n", NS, "--wait", "--timeout", "120s")
    wait_for(lambda: not c.crds(), 60, "the CRDs gone")
    assert not c.objects("secrets", "", NS)  # the release record and the generated token


def test_a_namespaced_install_runs_jobs_in_its_namespace_under_roles(
    helm_cluster: HelmCluster,
) -> None:
    c = helm_cluster
    team = f"{c.namespace}-team"
    c.kubectl("create", "namespace", team)
    try:
        since = c.audit_mark()
        c.helm(
            "install",
            "kubetune",
            str(CHART),
            "-n",
            NS,
            "--create-namespace",
            "--set",
            f"watchNamespaces={{{team}}}",
            "--set",
            "suggestion.replicas=1",
            "--set",
            "dashboard.enabled=true",
            "--wait",
            "--timeout",
            "240s",
        )
        ours = c.cluster_scoped("clusterroles", "rbac.authorization.k8s.io")
        assert not [name for name in ours if name.startswith("kubetune")]
        roles = c.api.request("GET", "/apis/rbac.authorization.k8s.io/v1/roles")["items"]
        assert sorted(
            (r["metadata"]["namespace"], r["metadata"]["name"])
            for r in roles
            if r["metadata"]["name"].startswith("kubetune")
        ) == [(team, "kubetune-dashboard"), (team, "kubetune-operator")]
        elsewhere = small_job("elsewhere")
        c.apply(elsewhere)  # in the test's namespace: not watched
        job = small_job("scoped")
        job["metadata"]["namespace"] = team
        c.apply(job)
        c.kubectl(
            "wait",
            "-n",
            team,
            "--for=jsonpath={.status.phase}=Succeeded",
            "tuningjob/scoped",
            "--timeout=240s",
        )
        assert c.refused(since) == []  # the Role in the team's namespace is all it needed
        assert "status" not in c.objects("tuningjobs")["elsewhere"]
        in_cluster_dashboard(c, since, team)
    finally:
        remove_namespace(c, team)


def in_cluster_dashboard(c: HelmCluster, since: int, team: str) -> None:
    """The chart's dashboard (a pod, as its read-only service account) shows the team's
    finished job in chromium, through its Service; the authorizer refused it nothing."""
    service = c.objects("services", "", NS)["kubetune-dashboard"]["spec"]
    url = f"http://{service['clusterIP']}:{service['ports'][0]['port']}"
    with browser() as chromium:
        tab = new_tab(chromium)
        tab.goto(url + "/")
        tab.page.locator("tr[data-job='scoped'] a").click()
        tab.wait("() => document.getElementById('history')?.dataset.points === '2'")
        assert tab.page.locator("#trials tbody tr").count() == 2
        tab.page.locator("#trials tbody tr a").first.click()
        tab.page.wait_for_url(f"{url}/jobs/scoped/trials/scoped-0")
        tab.wait("() => document.getElementById('log-state').textContent.startsWith('the trial')")
        assert "epoch 2:" in tab.page.locator("#logs").inner_text()
        tab.shot("in-cluster-trial")
        assert not tab.errors, tab.errors
    user = f"system:serviceaccount:{NS}:kubetune-dashboard"
    requests = c.audit(user, since)
    assert requests, "the dashboard made no request of its own"
    assert not [e for e in requests if e.get("responseStatus", {}).get("code") == 403]
    assert {e["verb"] for e in requests} <= {"get", "list", "watch"}
    assert {e["objectRef"]["namespace"] for e in requests if "objectRef" in e} == {team}
