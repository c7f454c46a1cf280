"""The controllers a cluster runs besides the API server, as far as a Helm install needs them.

`DeploymentController` keeps each Deployment's pods (no ReplicaSet layer: pods are owned by the
Deployment and carry a pod-template-hash) and writes the status that `helm --wait` and
`kubectl rollout status` read. Recreate replaces all pods once the old ones are gone;
RollingUpdate starts new pods and deletes the old ones once the new ones are ready.

`ServiceProxy` is kube-proxy: each Service gets a loopback cluster IP (127.0.200.x), and each
port there forwards TCP to a ready pod the selector matches (round robin), at its pod IP and
target port (a number or a container port's name).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from .server import ApiServerEmulator

Key = tuple[str, str]


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and not pod[
        "metadata"
    ].get("deletionTimestamp")


def selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class _Controller:
    """Runs `reconcile(key)` as a task after writes, one at a time per key, coalescing bursts."""

    def __init__(self, emulator: ApiServerEmulator) -> None:
        self.emulator = emulator
        self.store = emulator.store
        self._pending: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        emulator.listeners.append(self.on_write)

    async def on_write(self, type_: str, obj: dict[str, Any]) -> None:
        raise NotImplementedError

    def enqueue(self, key: Key, reconcile: Callable[[Key], Coroutine[Any, Any, None]]) -> None:
        if key in self._pending:
            return
        self._pending.add(key)

        async def run() -> None:
            await asyncio.sleep(0)  # after the write that triggered it is published
            self._pending.discard(key)
            await reconcile(key)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def write(self, change: Callable[[], Any]) -> None:
        before = self.store.rv
        with contextlib.suppress(Exception):  # gone or changed meanwhile: the next event retries
            change()
        await self.emulator._publish(before)


class DeploymentController(_Controller):
    async def on_write(self, type_: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if obj.get("kind") == "Deployment" and type_ != "DELETED":
            self.enqueue((meta["namespace"], meta["name"]), self.reconcile)
        elif obj.get("kind") == "Pod":
            for ref in meta.get("ownerReferences", []):
                if ref.get("kind") == "Deployment":
                    self.enqueue((meta["namespace"], ref["name"]), self.reconcile)

    async def reconcile(self, key: Key) -> None:
        deployments = self.store.kind("apps", "deployments")
        pods_kind = self.store.kind("", "pods")
        deployment = self.store.objects[("apps", "deployments")].get(key)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        spec = deployment["spec"]
        want = spec.get("replicas", 1)
        template = spec["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        uid = deployment["metadata"]["uid"]
        owned = [
            p
            for (ns, _), p in self.store.objects[("", "pods")].items()
            if ns == key[0]
            and any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
        ]
        live = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
        current = [p for p in live if p["metadata"]["labels"].get("pod-template-hash") == digest]
        old = [p for p in live if p not in current]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        doomed = list(old) if recreate or len([p for p in current if ready(p)]) >= want else []
        doomed += current[want:]
        for pod in doomed:
            name = pod["metadata"]["name"]
            await self.write(lambda n=name: self.store.delete(pods_kind, key[0], n))
        waiting_for_old = recreate and any(p not in current for p in owned)
        if not waiting_for_old:
            for _ in range(want - len(current)):
                pod = self._pod(deployment, template, digest)
                await self.write(lambda p=pod: self.store.create(pods_kind, key[0], p))
        await self._status(deployments, key, deployment, want, digest)

    def _pod(
        self, deployment: dict[str, Any], template: dict[str, Any], digest: str
    ) -> dict[str, Any]:
        meta = json.loads(json.dumps(template.get("metadata") or {}))
        meta["labels"] = {**meta.get("labels", {}), "pod-template-hash": digest}
        name = deployment["metadata"]["name"]
        meta["name"] = f"{name}-{digest}-{uuid.uuid4().hex[:5]}"
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
                "uid": deployment["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": json.loads(json.dumps(template["spec"])),
        }

    async def _status(
        self, kind: Any, key: Key, deployment: dict[str, Any], want: int, digest: str
    ) -> None:
        uid = deployment["metadata"]["uid"]
        live = [
            p
            for (ns, _), p in self.store.objects[("", "pods")].items()
            if ns == key[0]
            and not p["metadata"].get("deletionTimestamp")
            and any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
        ]
        updated = [p for p in live if p["metadata"]["labels"].get("pod-template-hash") == digest]
        ready_now = [p for p in updated if ready(p)]
        done = len(updated) == len(ready_now) == want == len(live)
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(live),
            "updatedReplicas": len(updated),
            "readyReplicas": len(ready_now),
            "availableReplicas": len(ready_now),
            "unavailableReplicas": max(0, want - len(ready_now)),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if len(ready_now) >= want else "False",
                    "reason": "MinimumReplicasAvailable"
                    if len(ready_now) >= want
                    else "MinimumReplicasUnavailable",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                },
            ],
        }
        if deployment.get("status") == status:
            return
        await self.write(
            lambda: self.store.update(
                kind, key[0], key[1], lambda o: {**o, "status": status}, "status"
            )
        )


class ServiceProxy(_Controller):
    def __init__(self, emulator: ApiServerEmulator) -> None:
        super().__init__(emulator)
        self.cluster_ips: dict[Key, str] = {}
        self._servers: dict[Key, list[asyncio.Server]] = {}
        self._next = itertools.count(2)
        self._turn = itertools.count()

    async def on_write(self, type_: str, obj: dict[str, Any]) -> None:
        if obj.get("kind") != "Service":
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "DELETED":
            for server in self._servers.pop(key, []):
                server.close()
            self.cluster_ips.pop(key, None)
        elif type_ == "ADDED":
            self.enqueue(key, self.open)

    def address(self, namespace: str, name: str) -> str | None:
        return self.cluster_ips.get((namespace, name))

    async def open(self, key: Key) -> None:
        if key in self.cluster_ips:
            return
        n = next(self._next)
        ip = self.cluster_ips[key] = f"127.0.{200 + n // 250}.{n % 250 + 2}"
        service = self.store.objects[("", "services")].get(key)
        for port in ((service or {}).get("spec") or {}).get("ports", []):
            handler = self._forwarder(key, port)
            self._servers.setdefault(key, []).append(
                await asyncio.start_server(handler, ip, port["port"])
            )

    def _forwarder(
        self, key: Key, port: dict[str, Any]
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            target = self._endpoint(key, port)
            if target is None:
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        return forward

    def _endpoint(self, key: Key, port: dict[str, Any]) -> tuple[str, int] | None:
        service = self.store.objects[("", "services")].get(key)
        if service is None:
            return None
        selector = service["spec"].get("selector") or {}
        pods = [
            p
            for (ns, _), p in sorted(self.store.objects[("", "pods")].items())
            if ns == key[0] and selects(selector, p) and ready(p) and p["status"].get("podIP")
        ]
        if not pods:
            return None
        pod = pods[next(self._turn) % len(pods)]
        return pod["status"]["podIP"], container_port(pod, port.get("targetPort", port["port"]))

    def close(self) -> None:
        for servers in self._servers.values():
            for server in servers:
                server.close()


def container_port(pod: dict[str, Any], target: int | str) -> int:
    """A target port: a number, or the name of one of the pod's container ports."""
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for c in pod["spec"].get("containers", []):
        for p in c.get("ports", []):
            if p.get("name") == target:
                return int(p["containerPort"])
    raise LookupError(f"pod {pod['metadata']['name']} has no port named {target}")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
