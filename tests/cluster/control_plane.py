"""The real control plane for tests: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler built from the Kubernetes sources (build.py), with certificates (pki.py), pod
networking (network.py) and a process kubelet (kubelet.py).

`ControlPlane(...).start()` brings all of it up and waits until it serves; `stop()` tears it
down. A run that was killed leaves a pid file in its slot's directory: the next control plane to
take that slot stops those processes and removes that network first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml

from . import build
from .network import RUN, Network, take_slot
from .pki import Authority, Pair, service_account_key

NODE = "kubetune-node"
ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = ",".join(
    f"{name}-controller"
    for name in (
        "garbage-collector",
        "namespace",
        "serviceaccount",
        "serviceaccount-token",
        "root-ca-certificate-publisher",
        "deployment",
        "replicaset",
        "endpoints",
        "endpointslice",
        "endpointslice-mirroring",
        "job",
        "clusterrole-aggregation",
        "resourcequota",
        "ttl-after-finished",
        "disruption",
        "node-lifecycle",
        "persistentvolume-binder",
        "persistentvolume-protection",
        "persistentvolumeclaim-protection",
    )
)
# Every request except the control plane's and the node's own, for tests that check who did what.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "None",
            "users": [
                "system:kube-scheduler",
                "system:kube-controller-manager",
                "system:kube-proxy",
                "system:apiserver",
            ],
        },
        {"level": "None", "userGroups": ["system:nodes", "system:serviceaccounts:kube-system"]},
        {"level": "Metadata"},
    ],
}
# Watches of TuningJobs go straight to etcd, so a watch from a compacted revision gets a real
# `410 Gone` (the watch cache would answer it from memory).
WATCH_CACHE = "tuningjobs.kubetune.dev#0"


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Component:
    """One control-plane process, its log file and how to start it again."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 5) -> None:
        """Signal it and wait; then kill. kube-apiserver finishes its graceful termination in
        well under a second here but then lingers until killed, so the wait stays short."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return f"--- {self.name}: no log"
        return "\n".join([f"--- {self.name} (last {len(text)} lines of {self.log}):", *text])


class ControlPlane:
    def __init__(self, root: Path | None = None, *, nice: int = 0) -> None:
        if os.geteuid() != 0 or not shutil.which("ip"):
            raise ControlPlaneError(
                "the test control plane needs root and iproute2's `ip`: its pods get network "
                "namespaces, a bridge and mounts of their own"
            )
        self.binaries = build.ensure_control_plane()
        self.slot, self._lock_fd = take_slot()
        self.slot_dir = RUN / f"slot-{self.slot}"
        self._stop_leftovers()
        self.root = root or Path(tempfile.mkdtemp(prefix=f"kubetune-cluster-{self.slot}-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.network = Network(self.slot)
        self.nice = nice  # > 0: pods run at a lower CPU priority (as if on other nodes)
        self.components: dict[str, Component] = {}
        self.kubelet: Any = None
        self.proxy: Any = None
        self.server = f"https://{self.network.gateway}:6443"

    # -- set-up -------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> ControlPlane:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        pki = self.root / "pki"
        ca = self.authority = Authority(pki)
        self.ca = ca.cert
        gw = self.network.gateway
        kubernetes_ip = self.network.service_ip(1)
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            hosts=(
                gw,
                "127.0.0.1",
                kubernetes_ip,
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        sa = service_account_key(pki)
        self.admin = self._kubeconfig(
            "admin", ca.issue("admin", "admin", groups=("system:masters",))
        )
        kcm = self._kubeconfig("kcm", ca.issue("kcm", "system:kube-controller-manager"))
        sched = self._kubeconfig("scheduler", ca.issue("scheduler", "system:kube-scheduler"))
        self.node_kubeconfig = self._kubeconfig(
            "node", ca.issue("node", f"system:node:{NODE}", groups=("system:nodes",))
        )
        self.proxy_kubeconfig = self._kubeconfig("proxy", ca.issue("proxy", "system:kube-proxy"))
        kubelet_client = ca.issue("apiserver-kubelet", "kube-apiserver-kubelet-client")
        self.kubelet_serving = ca.issue("kubelet", NODE, hosts=(gw,))
        self.network.up()
        policy = self.root / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        self.audit_log = self.root / "logs" / "audit.log"
        etcd_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        bins = self.binaries
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        self._add(
            "etcd",
            [
                str(bins["etcd"]),
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._add(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={gw}",
                f"--advertise-address={gw}",
                "--secure-port=6443",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                f"--watch-cache-sizes={WATCH_CACHE}",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--etcd-compaction-interval=0",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._add(
            "kube-controller-manager",
            [
                str(bins["kube-controller-manager"]),
                f"--kubeconfig={kcm}",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        self._add(
            "kube-scheduler",
            [
                str(bins["kube-scheduler"]),
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )
        deadline = time.monotonic() + timeout
        self.components["etcd"].start()
        self._record_pids()
        self._wait("etcd", f"{self.etcd_url}/health", deadline, tls=False)
        self.components["kube-apiserver"].start()
        self._record_pids()
        self._wait("kube-apiserver", f"{self.server}/readyz", deadline)
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.components[name].start()
        self._record_pids()
        from .kubelet import Kubelet
        from .proxy import ServiceProxy

        self.proxy = ServiceProxy(self)
        self.kubelet = Kubelet(self)
        self._wait_for_default_service_account(deadline)

    def _add(self, name: str, argv: list[str]) -> None:
        self.components[name] = Component(name, argv, self.root / "logs" / f"{name}.log")

    def _kubeconfig(self, name: str, pair: Pair) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubetune-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca)},
                }
            ],
            "users": [
                {
                    "name": name,
                    "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                }
            ],
            "contexts": [
                {
                    "name": "kubetune-test",
                    "context": {"cluster": "kubetune-test", "user": name, "namespace": "default"},
                }
            ],
            "current-context": "kubetune-test",
        }
        path = self.root / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def issue_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig with a new client certificate: its own user in the audit log."""
        return self._kubeconfig(user, self.authority.issue(user, user, groups=groups))

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        pki = self.root / "pki"
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        return context

    def _wait(self, name: str, url: str, deadline: float, tls: bool = True) -> None:
        context = self._ssl() if tls else None
        last = ""
        while time.monotonic() < deadline:
            process = self.components[name].process
            if process is not None and process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {process.returncode}\n{self.logs_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5, context=context) as reply:
                    if reply.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready at {url}: {last}\n{self.logs_tail()}")

    def _wait_for_default_service_account(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None:
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"the default ServiceAccount never appeared (controller manager)\n{self.logs_tail()}"
        )

    def get(self, path: str) -> Any:
        """GET a path as the admin; None on 404."""
        import json
        import urllib.error

        try:
            with urllib.request.urlopen(
                self.server + path, timeout=10, context=self._ssl()
            ) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def audit_events(self) -> list[dict[str, Any]]:
        """Every audited request so far, once each (its last stage)."""
        import json

        events: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(FileNotFoundError), open(self.audit_log) as f:
            for line in f:
                if line.strip():
                    event = json.loads(line)
                    events[event["auditID"]] = event
        return list(events.values())

    # -- faults -------------------------------------------------------------------------------

    def restart(
        self, name: str, down_for: float = 0.0, sig: signal.Signals = signal.SIGKILL
    ) -> None:
        """Stop one component (a crash by default: SIGKILL), wait `down_for` seconds, start it
        again and wait until the API server is ready."""
        component = self.components[name]
        component.stop(sig)
        time.sleep(down_for)
        component.start()
        self._record_pids()
        deadline = time.monotonic() + 120
        if name == "etcd":
            self._wait("etcd", f"{self.etcd_url}/health", deadline, tls=False)
        self._wait("kube-apiserver", f"{self.server}/readyz", deadline)

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (as the API server does every 5
        minutes by default); returns that revision."""
        import json

        def post(path: str, body: dict[str, Any]) -> Any:
            request = urllib.request.Request(
                self.etcd_url + path, json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                return json.loads(reply.read())

        revision = int(post("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    # -- tear-down ------------------------------------------------------------------------------

    def logs_tail(self, lines: int = 15) -> str:
        return "\n".join(c.tail(lines) for c in self.components.values())

    def stop(self) -> None:
        for part in (self.kubelet, self.proxy):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        self.kubelet = self.proxy = None
        for component in reversed(list(self.components.values())):
            component.stop()
        self.network.down()
        with contextlib.suppress(FileNotFoundError):
            (self.slot_dir / "pids").unlink()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.remove()

    # -- what a killed run left behind ------------------------------------------------------------

    def _record_pids(self) -> None:
        self.slot_dir.mkdir(parents=True, exist_ok=True)
        lines = []
        for c in self.components.values():
            if c.process is not None and c.process.poll() is None:
                lines.append(f"{c.process.pid} {_start_time(c.process.pid)}")
        (self.slot_dir / "pids").write_text("\n".join(lines) + "\n")

    def _stop_leftovers(self) -> None:
        pidfile = self.slot_dir / "pids"
        if not pidfile.exists():
            return
        for line in pidfile.read_text().split("\n"):
            if not line.strip():
                continue
            pid, started = line.split()
            if _start_time(int(pid)) == started:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid), signal.SIGKILL)
        pidfile.unlink()


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat: IO[str] = f
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return "gone"
