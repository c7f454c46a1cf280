"""The tests' kubelet: run each new Pod's primary container as a local process.

Listens to the emulator's writes. A new Pod starts its first container's command + args with the
pod's env (plain `value`s, `secretKeyRef`s and the `status.podIP` field) in `workdir`, `$(VAR)`
references in command and args expanded as a kubelet does, goes Running, then Succeeded or
Failed by exit code with a terminated container status. Each pod gets its own loopback address
as its IP (127.0.0.2, 127.0.0.3, ...); all of them reach this host, so a process that binds its
pod IP can be scraped there as on a pod network. Deletion is graceful, as on a real node:
once the API server marks a running Pod (deletionTimestamp), the process group gets SIGTERM, then
SIGKILL when deletionGracePeriodSeconds have passed, and only then does the object go. A forced
deletion (grace 0) kills at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .sandbox import Sandbox
from .server import ApiServerEmulator
from .store import now
from .workloads import container_port


class Kubelet:
    def __init__(
        self,
        emulator: ApiServerEmulator,
        workdir: Path,
        logs: Path,
        api_url: str | None = None,
        resolve: Callable[[str, str], str | None] = lambda namespace, name: None,
        nice: int = 0,
    ) -> None:
        self.emulator = emulator
        self.nice = nice  # > 0: containers run at a lower CPU priority (as if on other nodes)
        self.api_url = api_url  # given: pods get their service account's credentials
        self.resolve = resolve  # (namespace, service) -> cluster IP: the cluster's DNS
        self.workdir = workdir
        self.logs = logs
        emulator.log_dir = logs  # served as pods/log
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        self.started: list[str] = []
        self.signalled: dict[str, list[str]] = {}  # pod name -> signals sent, in order
        self._terminating: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.admitting = asyncio.Event()  # cleared by hold(): pods wait, as on a full node
        self.admitting.set()
        self.pod_ips: dict[tuple[str, str], str] = {}
        self._next_ip = 2
        emulator.listeners.append(self.on_write)

    def hold(self) -> None:
        """Start no pod until `release()` (call both on the emulator's loop)."""
        self.admitting.clear()

    def release(self) -> None:
        self.admitting.set()

    async def on_write(self, type_: str, obj: dict[str, Any]) -> None:
        if obj.get("kind") != "Pod":
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        loop = asyncio.get_running_loop()
        if type_ == "ADDED" and key in self.emulator.store.objects[("", "pods")]:
            self._spawn(loop, self._run(key, obj))
        elif type_ == "MODIFIED" and obj["metadata"].get("deletionTimestamp"):
            grace = obj["metadata"].get("deletionGracePeriodSeconds", 0)
            if key not in self._terminating and grace:
                self._terminating.add(key)
                self._spawn(loop, self._terminate(key, grace))
        elif type_ == "DELETED" and key in self.processes:  # forced: no grace
            self._signal(key, self.processes.pop(key), signal.SIGKILL)

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        await self.admitting.wait()
        if key not in self.emulator.store.objects[("", "pods")]:
            return  # deleted while it waited
        container = pod["spec"]["containers"][0]
        ip = self.pod_ips[key] = self._new_ip()
        root = self.logs.parent / "pods" / key[1]
        try:
            sandbox = Sandbox(self.emulator, pod, ip, root, self.api_url, self.resolve)
        except OSError as exc:  # as a kubelet reports CreateContainerError
            await self._set_status(key, "Failed", container["name"], 128, str(exc))
            return
        own = self._env(pod["metadata"]["namespace"], container.get("env", []), ip)
        own = {k: sandbox.rewrite(v) for k, v in own.items()}
        command = [*container.get("command", []), *container.get("args", [])]
        argv = [sandbox.rewrite(expand(a, own)) for a in command]
        if argv:
            argv[0] = sandbox.executable(argv[0])
        if argv and self.nice:
            argv = ["nice", "-n", str(self.nice), *argv]
        inherited = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env = {**inherited, "OMP_NUM_THREADS": "1", **sandbox.env, **own}
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{key[1]}.log", "wb")  # noqa: SIM115
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=container.get("workingDir", self.workdir),
                env=env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # a session of its own would also be an autogroup of its own, whose CPU share
                # nice cannot lower: niced containers get only a process group
                **({"process_group": 0} if self.nice else {"start_new_session": True}),
            )
        except OSError as exc:
            await self._set_status(key, "Failed", container["name"], 127, str(exc))
            return
        finally:
            log.close()
        self.processes[key] = process
        self.started.append(key[1])
        probe = container.get("readinessProbe")
        await self._set_status(key, "Running", container["name"], ready=not probe)
        if probe:
            self._spawn(asyncio.get_running_loop(), self._probe(key, process, container, ip))
        code = await process.wait()
        if self.processes.pop(key, None) is None:
            return  # force-deleted meanwhile
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number
        await self._set_status(key, "Succeeded" if code == 0 else "Failed", container["name"], code)
        if key in self._terminating:
            await self._finish_termination(key)

    async def _probe(
        self,
        key: tuple[str, str],
        process: asyncio.subprocess.Process,
        container: dict[str, Any],
        ip: str,
    ) -> None:
        """Ready once the readiness probe passes (tcpSocket, httpGet or gRPC health)."""
        probe = container["readinessProbe"]
        while process.returncode is None:
            if await passes(probe, container, ip):
                await self._set_status(key, "Running", container["name"], ready=True)
                return
            await asyncio.sleep(0.3)

    def _new_ip(self) -> str:
        n = self._next_ip
        self._next_ip += 1
        return f"127.0.{n // 250}.{n % 250 + 2}"

    def _env(self, namespace: str, env: list[dict[str, Any]], pod_ip: str) -> dict[str, str]:
        """Plain values, values from Secrets and the pod IP, as the kubelet resolves them."""
        resolved = {}
        secrets = self.emulator.store.objects[("", "secrets")]
        for e in env:
            if "value" in e:
                resolved[e["name"]] = expand(e["value"], resolved)
                continue
            field = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if field == "status.podIP":
                resolved[e["name"]] = pod_ip
                continue
            ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
            secret = secrets.get((namespace, ref.get("name", "")))
            data = (secret or {}).get("data") or {}
            if ref.get("key") in data:
                resolved[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
        return resolved

    async def _terminate(self, key: tuple[str, str], grace: float) -> None:
        """SIGTERM, the grace period, then SIGKILL; the pod goes once its process has exited."""
        process = self.processes.get(key)
        if process is None or process.returncode is not None:
            await self._finish_termination(key)
            return
        self._signal(key, process, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
        except TimeoutError:
            self._signal(key, process, signal.SIGKILL)
        # `_run` sees the exit, records it and finishes the termination.

    async def _finish_termination(self, key: tuple[str, str]) -> None:
        self._terminating.discard(key)
        store = self.emulator.store
        before = store.rv
        with contextlib.suppress(Exception):  # already gone
            store.terminated(store.kind("", "pods"), *key)
        await self.emulator._publish(before)

    def _signal(
        self, key: tuple[str, str], process: asyncio.subprocess.Process, sig: signal.Signals
    ) -> None:
        self.signalled.setdefault(key[1], []).append(sig.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    async def _set_status(
        self,
        key: tuple[str, str],
        phase: str,
        container: str,
        code: int | None = None,
        message: str = "",
        ready: bool = False,
    ) -> None:
        if code is None:
            state: dict[str, Any] = {"running": {"startedAt": now()}}
        else:
            reason = "Completed" if code == 0 else "Error"
            state = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "message": message,
                    "finishedAt": now(),
                }
            }
        store = self.emulator.store
        kind = store.kind("", "pods")
        pod = store.objects[("", "pods")].get(key) or {"spec": {"containers": [{}]}}
        image = pod["spec"]["containers"][0].get("image", "")
        container_status = {
            "name": container,
            "state": state,
            "ready": ready,
            "image": image,  # the fields a real kubelet always sets
            "imageID": f"emulated://{image}",
            "restartCount": 0,
            "started": code is None,
        }
        conditions = [{"type": "Ready", "status": str(ready), "lastTransitionTime": now()}]
        status = {
            "phase": phase,
            "startTime": now(),
            "conditions": conditions,
            "containerStatuses": [container_status],
        }
        if key in self.pod_ips:
            status["podIP"] = self.pod_ips[key]
        before = store.rv
        try:
            store.update(kind, key[0], key[1], lambda o: {**o, "status": status}, "status")
        except Exception:
            return  # the pod is gone
        await self.emulator._publish(before)

    def stop(self) -> None:
        for key, process in self.processes.items():
            self._signal(key, process, signal.SIGKILL)
        self.processes.clear()


async def passes(probe: dict[str, Any], container: dict[str, Any], ip: str) -> bool:
    pod = {"metadata": {"name": container["name"]}, "spec": {"containers": [container]}}
    try:
        if "grpc" in probe:
            port = container_port(pod, probe["grpc"]["port"])
            async with grpc.aio.insecure_channel(f"{ip}:{port}") as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{ip}:{container_port(pod, get['port'])}{get.get('path', '/')}"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                return 200 <= response.status < 400
        port = container_port(pod, probe["tcpSocket"]["port"])
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1)
        writer.close()
        return True
    except (OSError, TimeoutError, grpc.RpcError, aiohttp.ClientError):
        return False


def expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` replaced by VAR's value where it is defined; `$$(VAR)` escapes, as in a Pod."""

    def value(match: re.Match[str]) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value, text)
