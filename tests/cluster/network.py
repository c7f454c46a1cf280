"""Pod networking for the test cluster: a bridge, one network namespace per pod, and names.

Each control plane takes a slot N (a lock file, so two test runs on one machine never share one):
- the bridge `ktbrN` holds 10.244.N.1/24: the node's address, where the API server listens;
- each pod gets a network namespace `ktN-<i>` with a veth `eth0` at 10.244.N.<i>, its default
  route via the bridge, so pods reach each other, the node and the API server, and the node
  reaches every pod IP (Prometheus scrapes them from here);
- Service cluster IPs come from 10.96.N.0/24, which is routed to the node's own loopback
  (`ip route add local`), so a pod's packets to a cluster IP arrive at the node, where the
  userspace proxy (proxy.py) listens on that IP and forwards to the endpoints;
- names: each pod's `/etc/netns/<ns>/hosts` (bind-mounted over /etc/hosts inside the pod) lists
  `svc`, `svc.ns`, `svc.ns.svc` and `svc.ns.svc.cluster.local` for every Service, rewritten in
  place when Services change. No DNS server runs; nothing leaves this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

RUN = Path("/run/kubetune-test-cluster")
NETNS_ETC = Path("/etc/netns")
SLOTS = 32


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def take_slot() -> tuple[int, int]:
    """The first free slot and its lock file descriptor, held for the control plane's life."""
    RUN.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        fd = os.open(RUN / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise RuntimeError(f"all {SLOTS} test-cluster slots in {RUN} are taken")


@dataclass(frozen=True)
class PodNetwork:
    namespace: str  # the network namespace's name
    ip: str
    hosts: Path  # bind-mounted over the pod's /etc/hosts
    resolv: Path


class Network:
    """The bridge, the pod namespaces and the name files of one slot."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.bridge = f"ktbr{slot}"
        self.gateway = f"10.244.{slot}.1"
        self.pod_cidr = f"10.244.{slot}.0/24"
        self.service_cidr = f"10.96.{slot}.0/24"
        self.prefix = f"kt{slot}-"
        self._lock = threading.Lock()
        self._free = list(range(2, 255))
        self._pods: dict[str, tuple[PodNetwork, str, str]] = {}  # ns -> (net, pod ns, name)
        self._services: dict[tuple[str, str], str] = {}  # (namespace, name) -> cluster IP

    def service_ip(self, index: int) -> str:
        return f"10.96.{self.slot}.{index}"

    def up(self) -> None:
        self.down()  # whatever a killed run left in this slot
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        ip("route", "add", "local", self.service_cidr, "dev", "lo")

    def down(self) -> None:
        for name in self.leftover_namespaces():
            kill_namespace(name)
            ip("netns", "del", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        ip("link", "del", self.bridge, check=False)
        ip("route", "del", "local", self.service_cidr, "dev", "lo", check=False)

    def leftover_namespaces(self) -> list[str]:
        listed = ip("netns", "list", check=False).stdout.split("\n")
        names = [line.split()[0] for line in listed if line.strip()]
        return [n for n in names if n.startswith(self.prefix)]

    def add_pod(self, namespace: str, name: str) -> PodNetwork:
        with self._lock:
            if not self._free:
                raise RuntimeError(f"no pod IP left in {self.pod_cidr}")
            index = self._free.pop(0)
        ns, pod_ip, host_end = (
            f"{self.prefix}{index}",
            f"10.244.{self.slot}.{index}",
            f"kt{self.slot}p{index}",
        )
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=True)
        net = PodNetwork(ns, pod_ip, etc / "hosts", etc / "resolv.conf")
        net.resolv.write_text(
            f"nameserver {self.gateway}\nsearch {namespace}.svc.cluster.local "
            "svc.cluster.local cluster.local\noptions attempts:1 timeout:1\n"
        )
        with self._lock:
            self._pods[ns] = (net, namespace, name)
            self._write_hosts(net, namespace, name)
        ip("netns", "add", ns)
        ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", host_end, "master", self.bridge, "up")
        commands = (
            f"addr add {pod_ip}/24 dev eth0\nlink set eth0 up\nlink set lo up\n"
            f"route add default via {self.gateway}\n"
        )
        subprocess.run(
            ["ip", "-n", ns, "-batch", "-"],
            input=commands,
            text=True,
            check=True,
            capture_output=True,
        )
        return net

    def remove_pod(self, net: PodNetwork) -> None:
        kill_namespace(net.namespace)
        ip("netns", "del", net.namespace, check=False)
        shutil.rmtree(NETNS_ETC / net.namespace, ignore_errors=True)
        with self._lock:
            self._pods.pop(net.namespace, None)
            self._free.append(int(net.ip.rsplit(".", 1)[1]))

    def set_services(self, services: dict[tuple[str, str], str]) -> None:
        """Every Service's cluster IP, by (namespace, name); each pod's hosts file follows."""
        with self._lock:
            if services == self._services:
                return
            self._services = dict(services)
            for net, namespace, name in self._pods.values():
                self._write_hosts(net, namespace, name)

    def _write_hosts(self, net: PodNetwork, namespace: str, name: str) -> None:
        lines = ["127.0.0.1 localhost", "::1 localhost", f"{net.ip} {name}"]
        for (svc_ns, svc), cluster_ip in sorted(self._services.items()):
            names = [f"{svc}.{svc_ns}", f"{svc}.{svc_ns}.svc", f"{svc}.{svc_ns}.svc.cluster.local"]
            if svc_ns == namespace:
                names.insert(0, svc)
            lines.append(f"{cluster_ip} {' '.join(names)}")
        # in place (same inode): the pod sees the file through a bind mount
        with open(net.hosts, "w") as f:
            f.write("\n".join(lines) + "\n")


def kill_namespace(name: str) -> None:
    """SIGKILL every process left in a network namespace."""
    pids = ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
