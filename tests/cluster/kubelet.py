"""The test node's kubelet: a Python process kubelet for the real control plane.

As `system:node:kubetune-node` (so the Node authorizer and NodeRestriction judge every call) it
- registers the Node (CPU, memory, pods and `nvidia.com/gpu` capacity) and renews its Lease;
- watches the pods the scheduler binds to it and runs each container as a local process
  (images.py) in the pod's network namespace (network.py) via launch.py;
- fills the volumes tests need: secret, configMap, emptyDir, downwardAPI and projected ones
  (service-account token from the TokenRequest API, `kube-root-ca.crt`, namespace), and
  persistentVolumeClaims bound to hostPath PersistentVolumes (subPaths created); resolves
  env: value, valueFrom (secretKeyRef, configMapKeyRef, fieldRef), envFrom and `$(VAR)`;
- writes the status a kubelet writes: phase, conditions, containerStatuses with exit codes and
  reasons, podIP, hostIP, startTime; restarts containers by restartPolicy;
- runs readiness probes (exec is not supported; tcpSocket, httpGet, grpc are);
- honours graceful deletion: SIGTERM, the grace period, SIGKILL, then a delete with grace 0 and
  the pod's UID as precondition;
- serves `/containerLogs` over HTTPS, so `kubectl logs -f` goes through the API server.
Containers run as this user (no user namespaces) with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import urllib3
from kubernetes.client.exceptions import ApiException

from . import images
from .api import Api, inform, log
from .network import PodNetwork
from .probes import passes
from .vars import expand

if TYPE_CHECKING:
    from .control_plane import ControlPlane

LAUNCH = Path(__file__).with_name("launch.py")
PORT = 10250
CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "250", "nvidia.com/gpu": "64"}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodError(Exception):
    """A container cannot be created yet: (reason, message), retried as a kubelet does."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Kubelet:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.node = "kubetune-node"
        self.api = Api(plane.node_kubeconfig)
        self.root = plane.root / "node"
        self.root.mkdir(parents=True, exist_ok=True)
        self.nice = plane.nice
        self.workers: dict[str, PodWorker] = {}  # by pod UID
        self.started: list[tuple[str, str]] = []  # (namespace, pod), each time a pod started
        self.signalled: dict[tuple[str, str], list[str]] = {}  # (namespace, pod) -> signals
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._register()
        self.server = LogServer(self)
        threading.Thread(target=self._renew_lease, name="lease", daemon=True).start()
        threading.Thread(target=self._sync_statuses, name="status", daemon=True).start()
        path = "/api/v1/pods"
        query = {"fieldSelector": f"spec.nodeName={self.node}"}
        inform(self.api, path, self._list, self._event, self._stop, query)

    # -- the node --------------------------------------------------------------------------------

    def _register(self) -> None:
        gw = self.plane.network.gateway
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        with contextlib.suppress(ApiException):
            self.api.request("POST", "/api/v1/nodes", node)
        conditions = [
            {
                "type": kind,
                "status": "True" if kind == "Ready" else "False",
                "reason": f"Kubelet{'Ready' if kind == 'Ready' else 'Has' + kind[:-8]}",
                "lastHeartbeatTime": now(),
                "lastTransitionTime": now(),
                "message": "the kubetune test kubelet",
            }
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
        ]
        status = {
            "capacity": CAPACITY,
            "allocatable": CAPACITY,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": gw},
                {"type": "Hostname", "address": self.node},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": PORT}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": os.uname().release,
                "osImage": "kubetune test node",
                "containerRuntimeVersion": "process://",
                "kubeletVersion": "v1.37.2",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.api.request(
            "PATCH",
            f"/api/v1/nodes/{self.node}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        while not self._stop.is_set():
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            spec = {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": stamp}
            try:
                if self.api.get(path) is None:
                    lease = {"metadata": {"name": self.node}, "spec": spec}
                    self.api.request("POST", path.rsplit("/", 1)[0], lease)
                else:
                    self.api.request(
                        "PATCH", path, {"spec": spec}, content_type="application/merge-patch+json"
                    )
            except Exception as exc:  # the API server restarting
                log.debug("lease: %s", exc)
            self._stop.wait(10)

    def _sync_statuses(self) -> None:
        """Write again every pod status that could not be written (the API server was down)."""
        while not self._stop.wait(0.5):
            with self._lock:
                stale = [w for w in self.workers.values() if w.unwritten]
            for worker in stale:
                worker._write_status()

    def cordon(self, unschedulable: bool) -> None:
        """Hold new pods in Pending (the scheduler binds none here), or let them run again."""
        admin = Api(self.plane.admin)
        admin.request(
            "PATCH",
            f"/api/v1/nodes/{self.node}",
            {"spec": {"unschedulable": unschedulable or None}},
            content_type="application/merge-patch+json",
        )

    # -- pods ------------------------------------------------------------------------------------

    def _list(self, pods: list[dict[str, Any]]) -> None:
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self._event("MODIFIED", pod)
        with self._lock:
            gone = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in gone:
            worker.deleted()

    def _event(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self.workers.get(uid)
            if worker is None and kind != "DELETED":
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    if pod["metadata"].get("deletionTimestamp"):
                        PodWorker.finalize(self, pod)
                    return
                worker = self.workers[uid] = PodWorker(self, pod)
                worker.start()
                return
        if worker is None:
            return
        if kind == "DELETED":
            worker.deleted()
        elif pod["metadata"].get("deletionTimestamp"):
            worker.terminate(pod)

    def forget(self, uid: str) -> None:
        with self._lock:
            self.workers.pop(uid, None)

    def find(self, namespace: str, name: str) -> PodWorker | None:
        with self._lock:
            for worker in self.workers.values():
                if (worker.namespace, worker.name) == (namespace, name):
                    return worker
        return None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def running(self, namespace: str) -> set[str]:
        """Names of the namespace's pods with a container process alive."""
        with self._lock:
            workers = list(self.workers.values())
        return {
            w.name
            for w in workers
            if w.namespace == namespace and any(c.running for c in w.containers)
        }

    def stop(self) -> None:
        self._stop.set()
        self.server.close()
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.kill_all()
            worker.cleanup()


class Container:
    def __init__(self, spec: dict[str, Any], log_path: Path) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.log = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.ready = False
        self.started_at = ""
        self.copier: threading.Thread | None = None  # writes its output into `log`

    @property
    def writing(self) -> bool:
        """Whether output may still arrive in its log (running, or the last lines in flight)."""
        return self.running or (self.copier is not None and self.copier.is_alive())

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ended(self, returncode: int) -> int:
        """Record that its process exited; the exit code (128 + the signal that killed it)."""
        code = 128 - returncode if returncode < 0 else returncode
        self.process = None
        self.ready = False
        self.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": self.started_at,
                "finishedAt": now(),
            }
        }
        return code


def log_stamp() -> bytes:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def copy_log(stream: Any, path: Path) -> None:
    """A container's output into its log, each line behind the time it arrived (as the CRI log
    format keeps it), so that the log endpoint can serve `timestamps` and `sinceTime`."""
    with stream, open(path, "ab", buffering=0) as log_file:
        for line in iter(stream.readline, b""):
            log_file.write(log_stamp() + b" " + (line if line.endswith(b"\n") else line + b"\n"))


class PodWorker:
    """One pod's life on the node, in a thread of its own."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet, self.pod = kubelet, pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = kubelet.root / "pods" / self.uid
        self.containers = [
            Container(c, self.dir / "logs" / f"{c['name']}.log") for c in pod["spec"]["containers"]
        ]
        self.sidecars = [  # native sidecars: init containers that restart Always
            Container(c, self.dir / "logs" / f"{c['name']}.log")
            for c in pod["spec"].get("initContainers") or []
            if c.get("restartPolicy") == "Always"
        ]
        self.net: PodNetwork | None = None
        self.net_released = False
        self.start_time = now()
        self.phase = "Pending"
        self.deleting = threading.Event()
        self.gone = threading.Event()
        self._status_lock = threading.Lock()
        self._end_lock = threading.Lock()
        self.done = False  # _run has returned: every container has ended
        self.unwritten = False  # the last status write failed: the status thread retries it

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"pod {self.name}", daemon=True).start()

    # -- running ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._prepare()
            if not self.deleting.is_set():
                self._start_all()
                self._supervise()
        except Exception as exc:  # a bug of this kubelet: shown on the pod, not only here
            if self.kubelet.stopping:
                return
            log.exception("pod %s/%s: %s", self.namespace, self.name, exc)
            for c in self.containers:
                c.state = {"waiting": {"reason": "TestKubeletError", "message": repr(exc)}}
            self._write_status()
        finally:
            self._release_network()  # the sandbox goes once every container has ended
            with self._end_lock:
                self.done = True
                ending = self.deleting.is_set()
            if ending:
                self._after_termination()

    def _prepare(self) -> None:
        """Volumes and env, retried until they resolve (a Secret created later, say)."""
        if not self.pod["spec"].get("hostNetwork"):
            self.net = self.kubelet.plane.network.add_pod(self.namespace, self.name)
        while not (self.deleting.is_set() or self.gone.is_set()):
            try:
                self.mounts = self._volumes()
                self.envs = {c.name: self._env(c.spec) for c in self.everything}
                for c in self.everything:
                    if images.lookup(c.spec.get("image", "")) is None:
                        image = c.spec.get("image", "")
                        raise PodError(
                            "ErrImagePull",
                            f"image {image!r} has no local stand-in on the test node "
                            "(tests/cluster/images.py)",
                        )
                return
            except (PodError, ApiException) as exc:
                # a Secret not there yet (the Node authorizer says 403 until a pod names it and
                # it exists): retried, as a kubelet retries a mount
                reason = exc.reason if isinstance(exc, PodError) else "CreateContainerConfigError"
                for c in self.containers:
                    c.state = {"waiting": {"reason": reason, "message": str(exc)[:500]}}
                self._write_status()
                self.deleting.wait(1)
            except (OSError, urllib3.exceptions.HTTPError):  # the API server restarting
                self.deleting.wait(1)

    @property
    def everything(self) -> list[Container]:
        return [*self.sidecars, *self.containers]

    def _start_all(self) -> None:
        self.kubelet.started.append((self.namespace, self.name))
        for c in self.sidecars:  # started first, as a kubelet starts native sidecars
            self._launch(c)
        for c in self.containers:
            self._launch(c)
        self._write_status()
        for c in self.containers:
            if c.spec.get("readinessProbe"):
                threading.Thread(target=self._probe, args=(c,), daemon=True).start()

    def _launch(self, c: Container) -> None:
        spec = c.spec
        image = images.lookup(spec.get("image", ""))
        assert image is not None
        env = {
            "PATH": images.PATH,
            "HOME": str(self.dir / "home"),
            "TMPDIR": str(self.dir / "tmp"),
            "HOSTNAME": self.name,
            "OMP_NUM_THREADS": "1",
            "KUBERNETES_SERVICE_HOST": self.kubelet.plane.network.service_ip(1),
            "KUBERNETES_SERVICE_PORT": "443",
            **image.env,
            **self.envs[c.name],
        }
        command = [expand(a, env) for a in spec.get("command") or image.command[:1]]
        args = spec.get("args")
        if args is None and not spec.get("command"):
            args = list(image.command[1:])
        argv = [*command, *[expand(a, env) for a in args or []]]
        argv[0] = images.executable(argv[0])
        workdir = spec.get("workingDir") or str(image.workdir or "/")
        for d in (self.dir / "home", self.dir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        mounts: list[list[Any]] = []
        if self.net is not None:
            mounts += [[str(self.net.hosts), "/etc/hosts", False]]
            mounts += [[str(self.net.resolv), "/etc/resolv.conf", False]]
        for m in spec.get("volumeMounts", []):
            source = self.mounts[m["name"]]
            if m.get("subPath"):
                source = source / m["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)  # as a kubelet does
            mounts.append([str(source), m["mountPath"], bool(m.get("readOnly"))])
        launch = {
            "netns": self.net.namespace if self.net else "",
            "hostname": self.name,
            "mounts": mounts,
            "keep": [str(images.ROOT), str(self.dir)],
            "cwd": workdir,
            "nice": self.kubelet.nice,
            "argv": argv,
            "env": env,
        }
        spec_file = self.dir / f"{c.name}.launch.json"
        spec_file.write_text(json.dumps(launch))
        c.log.parent.mkdir(parents=True, exist_ok=True)
        c.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCH), str(spec_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # a session of its own would also be an autogroup of its own, whose CPU share
            # nice cannot lower: niced containers get only a process group
            **({"process_group": 0} if self.kubelet.nice else {"start_new_session": True}),
        )
        c.copier = threading.Thread(
            target=copy_log, args=(c.process.stdout, c.log), name=f"log {c.name}", daemon=True
        )
        c.copier.start()
        c.started_at = now()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = not spec.get("readinessProbe")

    def _supervise(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while True:
            for c in self.containers:
                if c.process is None or c.process.poll() is None:
                    continue
                code = c.ended(c.process.returncode)
                restart = policy == "Always" or (policy == "OnFailure" and code != 0)
                if restart and not self.deleting.is_set():
                    c.last_state, c.restarts = c.state, c.restarts + 1
                    c.state = {"waiting": {"reason": "CrashLoopBackOff"}}
                    self._write_status()
                    if self.deleting.wait(min(10, 2 ** (c.restarts - 1))):
                        continue
                    self._launch(c)
                    if c.spec.get("readinessProbe"):
                        threading.Thread(target=self._probe, args=(c,), daemon=True).start()
                self._write_status()
            if all(c.process is None and "terminated" in c.state for c in self.containers):
                self._end_sidecars()
                return
            if self.gone.is_set():
                return
            time.sleep(0.05)

    def _probe(self, c: Container) -> None:
        probe = c.spec["readinessProbe"]
        ip = self.net.ip if self.net else self.kubelet.plane.network.gateway
        process = c.process
        time.sleep(probe.get("initialDelaySeconds", 0))
        period = min(probe.get("periodSeconds", 10), 0.5)
        while c.process is process and c.running and not self.deleting.is_set():
            if passes(probe, c.spec, ip):
                if not c.ready:
                    c.ready = True
                    self._write_status()
            elif c.ready:
                c.ready = False
                self._write_status()
            time.sleep(period if not c.ready else 1)

    # -- what the pod needs ----------------------------------------------------------------------

    def _volumes(self) -> dict[str, Path]:
        mounts = {}
        for volume in self.pod["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                mounts[volume["name"]] = self._claimed(volume["persistentVolumeClaim"])
                continue
            host = self.dir / "volumes" / volume["name"]
            host.mkdir(parents=True, exist_ok=True)
            files: dict[str, bytes] = {}
            if "secret" in volume:
                files = self._keys("secrets", volume["secret"], "secretName", volume["name"])
            elif "configMap" in volume:
                files = self._keys("configmaps", volume["configMap"], "name", volume["name"])
            elif "downwardAPI" in volume:
                files = self._downward(volume["downwardAPI"]["items"])
            elif "projected" in volume:
                for source in volume["projected"]["sources"]:
                    if "serviceAccountToken" in source:
                        token = source["serviceAccountToken"]
                        files[token["path"]] = self._token(token).encode()
                    elif "configMap" in source:
                        files |= self._keys("configmaps", source["configMap"], "name", "")
                    elif "secret" in source:
                        files |= self._keys("secrets", source["secret"], "name", "")
                    elif "downwardAPI" in source:
                        files |= self._downward(source["downwardAPI"]["items"])
            elif "emptyDir" not in volume:
                kind = next(iter(k for k in volume if k != "name"), "?")
                raise PodError("FailedMount", f"volume {volume['name']}: {kind} unsupported")
            for key, data in files.items():
                (host / key).parent.mkdir(parents=True, exist_ok=True)
                (host / key).write_bytes(data)
            mounts[volume["name"]] = host
        return mounts

    def _claimed(self, source: dict[str, Any]) -> Path:
        """The host directory of a claim's bound PersistentVolume (hostPath volumes only)."""
        name = source["claimName"]
        claim = self.kubelet.api.get(
            f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{name}"
        )
        volume = (claim or {}).get("spec", {}).get("volumeName")
        if not volume or (claim or {}).get("status", {}).get("phase") != "Bound":
            raise PodError("FailedMount", f'persistentvolumeclaim "{name}" is not bound')
        pv = self.kubelet.api.get(f"/api/v1/persistentvolumes/{volume}") or {}
        path = (pv.get("spec") or {}).get("hostPath", {}).get("path")
        if not path:
            raise PodError("FailedMount", f"volume {volume}: only hostPath volumes are supported")
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(path)

    def _keys(
        self, plural: str, source: dict[str, Any], name_field: str, volume: str
    ) -> dict[str, bytes]:
        name = source[name_field]
        obj = self.kubelet.api.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")
        if obj is None:
            if source.get("optional"):
                return {}
            kind = "secret" if plural == "secrets" else "configmap"
            raise PodError("FailedMount", f'{kind} "{name}" not found (volume {volume!r})')
        if plural == "secrets":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        else:
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
        if source.get("items"):
            return {i["path"]: data[i["key"]] for i in source["items"] if i["key"] in data}
        return data

    def _downward(self, items: list[dict[str, Any]]) -> dict[str, bytes]:
        return {
            i["path"]: self._field(i["fieldRef"]["fieldPath"]).encode()
            for i in items
            if "fieldRef" in i
        }

    def _token(self, source: dict[str, Any]) -> str:
        account = self.pod["spec"].get("serviceAccountName", "default")
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [source["audience"]] if source.get("audience") else [],
                "expirationSeconds": source.get("expirationSeconds", 3607),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.name,
                    "uid": self.uid,
                },
            },
        }
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        try:
            reply = self.kubelet.api.request("POST", path, request)
        except ApiException as exc:
            raise PodError("FailedMount", f"token for {account}: {exc.reason}") from exc
        return str(reply["status"]["token"])

    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.kubelet.node,
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
            "status.podIP": self.net.ip if self.net else self.kubelet.plane.network.gateway,
            "status.hostIP": self.kubelet.plane.network.gateway,
        }
        if path in simple:
            return simple[path]
        for field in ("labels", "annotations"):
            prefix = f"metadata.{field}['"
            if path.startswith(prefix):
                return str((meta.get(field) or {}).get(path[len(prefix) : -2], ""))
        raise PodError("CreateContainerConfigError", f"fieldRef {path!r} unsupported")

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            for kind, plural in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                if kind in source:
                    data = self._keys(plural, source[kind], "name", "")
                    env |= {prefix + k: v.decode() for k, v in data.items()}
        for item in container.get("env", []):
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = expand(item.get("value", ""), env)
                continue
            source = item["valueFrom"]
            if "fieldRef" in source:
                env[name] = self._field(source["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in source or "configMapKeyRef" in source:
                kind = "secretKeyRef" if "secretKeyRef" in source else "configMapKeyRef"
                ref = source[kind]
                plural = "secrets" if kind == "secretKeyRef" else "configmaps"
                data = self._keys(
                    plural, {"name": ref["name"], "optional": ref.get("optional")}, "name", ""
                )
                if ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise PodError(
                        "CreateContainerConfigError",
                        f"couldn't find key {ref['key']} in {plural[:-1]} "
                        f"{self.namespace}/{ref['name']}",
                    )
                env[name] = data[ref["key"]].decode()
            elif "resourceFieldRef" in source:
                resource = source["resourceFieldRef"]["resource"]
                group, _, what = resource.partition(".")
                value = (container.get("resources", {}).get(group) or {}).get(what, "0")
                env[name] = str(value)
        return env

    # -- status ----------------------------------------------------------------------------------

    def _write_status(self) -> None:
        with self._status_lock:
            status = self._status()
            self.unwritten = False
            try:
                self.kubelet.api.request(
                    "PATCH",
                    f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                    {"metadata": {"uid": self.uid}, "status": status},
                    content_type="application/merge-patch+json",
                )
            except ApiException as exc:
                if exc.status == 404:
                    self.gone.set()
                else:
                    self.unwritten = True
                    log.warning("pod %s status: %s", self.name, exc.reason)
            except Exception as exc:  # the API server restarting: written again soon
                self.unwritten = True
                log.debug("pod %s status: %s", self.name, exc)

    def _status(self) -> dict[str, Any]:
        statuses, sidecars = [], []
        for c in self.everything:
            (sidecars if c in self.sidecars else statuses).append(
                {
                    "name": c.name,
                    "state": c.state,
                    "lastState": c.last_state,
                    "ready": c.ready,
                    "restartCount": c.restarts,
                    "image": c.spec.get("image", ""),
                    "imageID": f"process://{c.spec.get('image', '')}",
                    "started": "running" in c.state,
                }
            )
        terminated = [c.state.get("terminated") for c in self.containers]
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if (
            all(terminated)
            and (policy == "Never" or all(t["exitCode"] == 0 for t in terminated if t))
            and not any(c.running for c in self.sidecars)
        ):
            phase = "Succeeded" if all(t["exitCode"] == 0 for t in terminated if t) else "Failed"
        elif any("running" in c.state or c.restarts for c in self.containers):
            phase = "Running"
        else:
            phase = "Pending"
        self.phase = phase
        ready = all(c.ready for c in self.containers)
        started = any(c.process is not None or "terminated" in c.state for c in self.containers)

        def condition(kind: str, ok: bool) -> dict[str, Any]:
            return {"type": kind, "status": str(ok), "lastTransitionTime": self.start_time}

        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", True),
                condition("PodReadyToStartContainers", started),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": statuses,
            **({"initContainerStatuses": sidecars} if sidecars else {}),
            "hostIP": self.kubelet.plane.network.gateway,
            "hostIPs": [{"ip": self.kubelet.plane.network.gateway}],
            "startTime": self.start_time,
        }
        if self.net is not None:
            status["podIP"] = self.net.ip
            status["podIPs"] = [{"ip": self.net.ip}]
        return status

    # -- ending ----------------------------------------------------------------------------------

    def terminate(self, pod: dict[str, Any]) -> None:
        """Graceful deletion: SIGTERM now, SIGKILL when the grace period is over."""
        with self._end_lock:
            if self.deleting.is_set():
                return
            self.deleting.set()
            done = self.done
        if done:  # nothing runs: the object can go now
            threading.Thread(target=self._after_termination, daemon=True).start()
            return
        grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
        threading.Thread(target=self._terminate, args=(grace,), daemon=True).start()

    def _terminate(self, grace: float) -> None:
        live = [c for c in self.everything if c.running]
        for c in live:
            self._signal(c, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.running for c in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in live:
            if c.running:
                self._signal(c, signal.SIGKILL)
        # _supervise records the exits; _run then finishes the deletion

    def _after_termination(self) -> None:
        if not self.gone.is_set():
            self._write_status()
            PodWorker.finalize(self.kubelet, self.pod)
        self.cleanup()

    @staticmethod
    def finalize(kubelet: Kubelet, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        with contextlib.suppress(ApiException):
            kubelet.api.request(
                "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body
            )

    def deleted(self) -> None:
        """The object is gone (a forced delete, or a pod that had ended): kill what runs."""
        self.gone.set()
        self.kill_all()
        with self._end_lock:
            self.deleting.set()
            done = self.done
        if done:
            self.cleanup()

    def _end_sidecars(self) -> None:
        """Once the main containers have ended: SIGTERM the sidecars, SIGKILL after 10 s."""
        live = [c for c in self.sidecars if c.running]
        for c in live:
            self._signal(c, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(c.running for c in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in self.sidecars:
            if c.running:
                self._signal(c, signal.SIGKILL)
            if c.process is not None:
                c.ended(c.process.wait())
        self._write_status()

    def kill_all(self) -> None:
        for c in self.everything:
            if c.running:
                self._signal(c, signal.SIGKILL)

    def _signal(self, c: Container, sig: signal.Signals) -> None:
        self.kubelet.signalled.setdefault((self.namespace, self.name), []).append(sig.name)
        if c.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.process.pid, sig)

    def _release_network(self) -> None:
        net, self.net_released = self.net, True
        if net is not None:
            self.kubelet.plane.network.remove_pod(net)

    def cleanup(self) -> None:
        if not self.net_released:
            self._release_network()
        self.kubelet.forget(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)


class LogServer:
    """The kubelet's HTTPS endpoint: /containerLogs/{namespace}/{pod}/{container}."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        plane = kubelet.plane
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(plane.kubelet_serving.cert, plane.kubelet_serving.key)
        context.load_verify_locations(plane.ca)
        context.verify_mode = ssl.CERT_REQUIRED  # only the API server's client certificate
        handler = type("Handler", (LogHandler,), {"kubelet": kubelet})
        server = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 1024})
        self.httpd = server((plane.network.gateway, PORT), handler)  # many `logs -f` at once
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, name="kubelet-https", daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _since(query: dict[str, str]) -> bytes | None:
    """The earliest timestamp to serve (sinceTime, or sinceSeconds ago), as stored text."""
    if "sinceTime" in query:
        then = datetime.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
    elif "sinceSeconds" in query:
        then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
            seconds=int(query["sinceSeconds"])
        )
    else:
        return None
    return then.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def _line(stored: bytes, stamps: bool, since: bytes | None) -> bytes | None:
    """A stored log line as served: with or without its timestamp; None if before `since`."""
    stamp, _, text = stored.partition(b" ")
    if since is not None and stamp < since:
        return None
    return stored if stamps else text


class LogHandler(BaseHTTPRequestHandler):
    kubelet: Kubelet

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/healthz":
            self._reply(200, b"ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._reply(404, b"not found")
            return
        _, namespace, pod, name = parts
        worker = self.kubelet.find(namespace, pod)
        container = next((c for c in worker.containers if c.name == name), None) if worker else None
        if worker is None or container is None or not container.log.exists():
            self._reply(
                404, f"container {name} of pod {namespace}/{pod} is not on this node".encode()
            )
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        stamps = query.get("timestamps") == "true"
        since = _since(query)
        with open(container.log, "rb") as f:
            data = f.read()
            stored = data.splitlines(keepends=True)
            rest = b"" if data.endswith(b"\n") or not stored else stored.pop()
            lines = [out for line in stored if (out := _line(line, stamps, since)) is not None]
            if "tailLines" in query:
                tail = int(query["tailLines"])
                lines = lines[-tail:] if tail else []
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            sent = self._send(b"".join(lines), limit, 0)
            if query.get("follow") != "true":
                return
            while limit is None or sent < limit:
                chunk = f.read(65536)
                if chunk:
                    rest += chunk
                    *whole, rest = rest.split(b"\n")
                    out = (_line(line + b"\n", stamps, since) for line in whole)
                    sent = self._send(b"".join(o for o in out if o is not None), limit, sent)
                    continue
                if not container.writing or worker.gone.is_set():
                    return
                time.sleep(0.1)

    def _send(self, data: bytes, limit: int | None, sent: int) -> int:
        if limit is not None:
            data = data[: max(0, limit - sent)]
        with contextlib.suppress(OSError):
            self.wfile.write(data)
            self.wfile.flush()
        return sent + len(data)

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
