"""The tests' kubelet: run each new Pod's primary container as a local process.

Listens to the emulator's writes. A new Pod starts its first container's command + args with the
pod's env (plain `value`s) in `workdir`, goes Running, then Succeeded or Failed by exit code with
a terminated container status. Deleting the Pod kills the process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .server import ApiServerEmulator
from .store import now


class Kubelet:
    def __init__(self, emulator: ApiServerEmulator, workdir: Path, logs: Path) -> None:
        self.emulator = emulator
        self.workdir = workdir
        self.logs = logs
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        self.started: list[str] = []
        emulator.listeners.append(self.on_write)

    async def on_write(self, type_: str, obj: dict[str, Any]) -> None:
        if obj.get("kind") != "Pod":
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "ADDED" and key in self.emulator.store.objects[("", "pods")]:
            asyncio.get_running_loop().create_task(self._run(key, obj))
        elif type_ == "DELETED" and key in self.processes:
            _kill(self.processes.pop(key))

    async def _run(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        argv = [*container.get("command", []), *container.get("args", [])]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{key[1]}.log", "wb")  # noqa: SIM115
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=container.get("workingDir", self.workdir),
                env=env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            await self._set_status(key, "Failed", container["name"], 127, str(exc))
            return
        finally:
            log.close()
        self.processes[key] = process
        self.started.append(key[1])
        await self._set_status(key, "Running", container["name"])
        code = await process.wait()
        if self.processes.pop(key, None) is None:
            return  # deleted meanwhile
        await self._set_status(key, "Succeeded" if code == 0 else "Failed", container["name"], code)

    async def _set_status(
        self,
        key: tuple[str, str],
        phase: str,
        container: str,
        code: int | None = None,
        message: str = "",
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
        status = {
            "phase": phase,
            "startTime": now(),
            "containerStatuses": [{"name": container, "state": state, "ready": code is None}],
        }
        store = self.emulator.store
        kind = store.kind("", "pods")
        before = store.rv
        try:
            store.update(kind, key[0], key[1], lambda o: {**o, "status": status}, "status")
        except Exception:
            return  # the pod is gone
        await self.emulator._publish(before)

    def stop(self) -> None:
        for process in self.processes.values():
            _kill(process)
        self.processes.clear()


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
