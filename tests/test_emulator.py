"""The test-side API server emulator behaves as the e2e tests assume a real one does."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .emulator.kubelet import Kubelet
from .emulator.server import EmulatorThread
from .emulator.workloads import DeploymentController, ServiceProxy
from .tools import ensure_tools

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread() as e:
        yield e


def call(
    emu: EmulatorThread, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(emu.url + path, data, {"Content-Type": ctype}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def test_create_conflict_patches_and_status_subresource(emu: EmulatorThread) -> None:
    code, created = call(emu, "POST", PODS, pod("p1", app="a"))
    meta = created["metadata"]
    assert (
        code == 201 and meta["namespace"] == "default" and meta["uid"] and meta["generation"] == 1
    )
    assert call(emu, "POST", PODS, pod("p1"))[0] == 409
    rv = meta["resourceVersion"]
    code, patched = call(
        emu,
        "PATCH",
        f"{PODS}/p1",
        {"metadata": {"labels": {"x": "1"}}},
        "application/merge-patch+json",
    )
    assert code == 200 and int(patched["metadata"]["resourceVersion"]) > int(rv)
    stale = {"metadata": {"resourceVersion": rv, "labels": {"y": "2"}}}
    assert call(emu, "PATCH", f"{PODS}/p1", stale, "application/merge-patch+json")[0] == 409
    failing = [{"op": "test", "path": "/metadata/name", "value": "other"}]
    assert call(emu, "PATCH", f"{PODS}/p1", failing, "application/json-patch+json")[0] == 422
    # status only through /status; the main resource ignores it
    call(
        emu, "PATCH", f"{PODS}/p1", {"status": {"phase": "Running"}}, "application/merge-patch+json"
    )
    assert "status" not in call(emu, "GET", f"{PODS}/p1")[1]
    call(
        emu,
        "PATCH",
        f"{PODS}/p1/status",
        {"status": {"phase": "Running"}},
        "application/merge-patch+json",
    )
    assert call(emu, "GET", f"{PODS}/p1")[1]["status"] == {"phase": "Running"}
    code, listed = call(emu, "GET", f"{PODS}?labelSelector=app%3Da,x%3D1")
    assert code == 200 and listed["kind"] == "PodList"
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p1"]
    assert call(emu, "GET", f"{PODS}?fieldSelector=status.phase%3DPending")[1]["items"] == []
    assert call(emu, "GET", "/api/v1/namespaces")[0] == 200


def test_owner_references_are_garbage_collected(emu: EmulatorThread) -> None:
    _, owner = call(emu, "POST", PODS, pod("owner"))
    child = pod("child")
    child["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner["metadata"]["uid"]}
    ]
    assert call(emu, "POST", PODS, child)[0] == 201
    assert call(emu, "DELETE", f"{PODS}/owner")[0] == 200
    assert call(emu, "GET", f"{PODS}/child")[0] == 404
    assert call(emu, "POST", PODS, child)[0] == 201  # an orphan on arrival is collected at once
    assert call(emu, "GET", f"{PODS}/child")[0] == 404


def test_watch_resumes_from_a_resource_version_and_times_out(emu: EmulatorThread) -> None:
    _, first = call(emu, "POST", PODS, pod("w1"))
    call(emu, "POST", PODS, pod("w2"))
    rv = first["metadata"]["resourceVersion"]
    url = f"{emu.url}{PODS}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        events = [json.loads(line) for line in resp.read().splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w2")]
    again = (
        f"{emu.url}{PODS}?watch=true&resourceVersion=0&timeoutSeconds=2&allowWatchBookmarks=true"
    )
    with urllib.request.urlopen(again, timeout=10) as r:
        types = [json.loads(line)["type"] for line in r.read().splitlines()]
    assert "ADDED" in types and "BOOKMARK" in types


def test_running_pod_is_deleted_gracefully_sigterm_then_sigkill(tmp_path: Path) -> None:
    # each writes a file named after itself once its signal handling is in place
    ignores_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "open('stubborn', 'w').close(); time.sleep(60)"
    )
    obeys_term = "import sys, time; open(sys.argv[1], 'w').close(); time.sleep(60)"
    with EmulatorThread() as emu:
        kubelet: Kubelet = emu.call(lambda: Kubelet(emu.emulator, tmp_path, tmp_path / "logs"))
        try:
            for name, code, grace in (("stubborn", ignores_term, 3), ("polite", obeys_term, 30)):
                body = pod(name)
                body["spec"]["terminationGracePeriodSeconds"] = grace
                body["spec"]["containers"][0]["command"] = ["python", "-c", code, name]
                assert call(emu, "POST", PODS, body)[0] == 201
                wait_until(lambda n=name: (tmp_path / n).exists() and phase(emu, n) == "Running")
                code_, marked = call(emu, "DELETE", f"{PODS}/{name}")
                assert code_ == 200 and marked["metadata"]["deletionTimestamp"]
                assert marked["metadata"]["deletionGracePeriodSeconds"] == grace
                # taken on the kubelet's loop: while the process lives, the object stays
                seen = []
                while (snap := snapshot(emu, kubelet, name))[2]:
                    assert snap[1], f"{name} removed while its process still ran"
                    seen.append(snap[0])
                wait_until(lambda n=name: call(emu, "GET", f"{PODS}/{n}")[0] == 404)
                if name == "stubborn":  # it outlived SIGTERM for the grace period
                    assert ["SIGTERM"] in seen
            assert kubelet.signalled == {"stubborn": ["SIGTERM", "SIGKILL"], "polite": ["SIGTERM"]}
            # a finished pod, and a forced deletion, go at once
            body = pod("quick")
            body["spec"]["containers"][0]["command"] = ["python", "-c", obeys_term, "quick"]
            call(emu, "POST", PODS, body)
            wait_until(lambda: phase(emu, "quick") == "Running")
            assert call(emu, "DELETE", f"{PODS}/quick?gracePeriodSeconds=0")[0] == 200
            assert call(emu, "GET", f"{PODS}/quick")[0] == 404
            wait_until(lambda: "quick" in kubelet.signalled)
            assert kubelet.signalled["quick"] == ["SIGKILL"]
        finally:
            emu.call(kubelet.stop)


def snapshot(emu: EmulatorThread, kubelet: Kubelet, name: str) -> tuple[list[str], bool, bool]:
    """(signals sent, object present, process alive) for one pod, read atomically."""

    def read() -> tuple[list[str], bool, bool]:
        key = ("default", name)
        present = key in emu.emulator.store.objects[("", "pods")]
        return list(kubelet.signalled.get(name, [])), present, key in kubelet.processes

    result: tuple[list[str], bool, bool] = emu.call(read)
    return result


def phase(emu: EmulatorThread, name: str) -> str | None:
    return call(emu, "GET", f"{PODS}/{name}")[1].get("status", {}).get("phase")


def wait_until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kubectl_protobuf_bodies_are_decoded(emu: EmulatorThread, tmp_path: Path) -> None:
    kubectl = [str(ensure_tools()["kubectl"]), "--kubeconfig", emu.kubeconfig(str(tmp_path / "kc"))]

    def run(*args: str) -> None:
        out = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr

    run("create", "namespace", "proto")  # client-go sends these as protobuf
    run("-n", "proto", "create", "secret", "generic", "s", "--from-literal=token=abc")
    run("-n", "proto", "create", "configmap", "c", "--from-literal=k=v")
    assert call(emu, "GET", "/api/v1/namespaces/proto")[0] == 200
    _, secret = call(emu, "GET", "/api/v1/namespaces/proto/secrets/s")
    assert secret["data"] == {"token": base64.b64encode(b"abc").decode()}
    assert call(emu, "GET", "/api/v1/namespaces/proto/configmaps/c")[1]["data"] == {"k": "v"}
    run("-n", "proto", "delete", "secret", "s")
    assert call(emu, "GET", "/api/v1/namespaces/proto/secrets/s")[0] == 404


def test_deployments_services_and_pod_sandboxes(tmp_path: Path) -> None:
    """Two replicas serve a mounted Secret over HTTP on 0.0.0.0:8000 (each at its own pod IP),
    become ready by their probe, and answer through the Service's cluster IP; a new template
    replaces them; scaling to 0 removes them."""
    with EmulatorThread() as emu:
        proxy: ServiceProxy = emu.call(lambda: ServiceProxy(emu.emulator))
        emu.call(lambda: DeploymentController(emu.emulator))
        kubelet: Kubelet = emu.call(
            lambda: Kubelet(emu.emulator, tmp_path, tmp_path / "logs", resolve=proxy.address)
        )
        try:
            secret = {
                "metadata": {"name": "site"},
                "data": {"index.html": base64.b64encode(b"hello").decode()},
            }
            assert call(emu, "POST", "/api/v1/namespaces/default/secrets", secret)[0] == 201
            service = {
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
            }
            assert call(emu, "POST", "/api/v1/namespaces/default/services", service)[0] == 201
            container = {
                "name": "web",
                "image": "x",
                "command": [
                    "python",
                    "-m",
                    "http.server",
                    "--bind",
                    "0.0.0.0",
                    "--directory",
                    "/srv",
                    "8000",
                ],
                "ports": [{"name": "http", "containerPort": 8000}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                "volumeMounts": [{"name": "site", "mountPath": "/srv"}],
            }
            deployment = {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [container],
                            "volumes": [{"name": "site", "secret": {"secretName": "site"}}],
                        },
                    },
                },
            }
            deployments = "/apis/apps/v1/namespaces/default/deployments"
            assert call(emu, "POST", deployments, deployment)[0] == 201

            def status() -> dict[str, Any]:
                return call(emu, "GET", f"{deployments}/web")[1].get("status") or {}

            wait_until(lambda: status().get("readyReplicas") == 2)
            ip = proxy.address("default", "web")
            assert ip is not None
            for _ in range(2):  # round robin over both replicas
                with urllib.request.urlopen(f"http://{ip}:80/index.html", timeout=10) as resp:
                    assert resp.read() == b"hello"

            patch = {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}}
            call(emu, "PATCH", f"{deployments}/web", patch, "application/merge-patch+json")
            wait_until(
                lambda: (
                    status().get("updatedReplicas") == 2
                    and status().get("replicas") == 2
                    and status().get("readyReplicas") == 2
                )
            )
            pods = call(emu, "GET", PODS)[1]["items"]
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            assert len(live) == 2 and all(p["metadata"]["labels"].get("v") == "2" for p in live)

            call(
                emu,
                "PATCH",
                f"{deployments}/web",
                {"spec": {"replicas": 0}},
                "application/merge-patch+json",
            )
            wait_until(lambda: not call(emu, "GET", PODS)[1]["items"])
        finally:
            emu.call(kubelet.stop)
            emu.call(proxy.close)
