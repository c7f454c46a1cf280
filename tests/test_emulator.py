"""The test-side API server emulator behaves as the e2e tests assume a real one does."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .emulator.kubelet import Kubelet
from .emulator.server import EmulatorThread

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
            for name, code, grace in (("stubborn", ignores_term, 1), ("polite", obeys_term, 30)):
                body = pod(name)
                body["spec"]["terminationGracePeriodSeconds"] = grace
                body["spec"]["containers"][0]["command"] = ["python", "-c", code, name]
                assert call(emu, "POST", PODS, body)[0] == 201
                wait_until(lambda n=name: (tmp_path / n).exists() and phase(emu, n) == "Running")
                code_, marked = call(emu, "DELETE", f"{PODS}/{name}")
                assert code_ == 200 and marked["metadata"]["deletionTimestamp"]
                assert marked["metadata"]["deletionGracePeriodSeconds"] == grace
                assert call(emu, "GET", f"{PODS}/{name}")[0] == 200  # still there, terminating
                wait_until(lambda n=name: call(emu, "GET", f"{PODS}/{n}")[0] == 404)
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


def phase(emu: EmulatorThread, name: str) -> str | None:
    return call(emu, "GET", f"{PODS}/{name}")[1].get("status", {}).get("phase")


def wait_until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
