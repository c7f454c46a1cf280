"""What a pod's container sees when the tests' kubelet runs it as a local process.

A real container has its own network namespace, cluster DNS, mounted volumes and its service
account's credentials. Here the process shares the host, so the kubelet translates:
- `0.0.0.0` in args and env values becomes the pod's own loopback IP (its network namespace);
- `<service>.<namespace>.svc[.cluster.local]` becomes the Service's cluster IP (cluster DNS);
- each volumeMount's path becomes a host directory holding the volume (secret, configMap keys
  as files; emptyDir empty), and TMPDIR points at the /tmp mount;
- unless automountServiceAccountToken is false, KUBECONFIG points at credentials of the pod's
  service account, which the emulator authorizes by its RBAC;
- a command found beside this Python (the image's entry points) runs from there.
"""

from __future__ import annotations

import base64
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .server import ApiServerEmulator

DNS = re.compile(
    r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?\b"
)
ANY_ADDRESS = re.compile(r"\b0\.0\.0\.0\b")


class Sandbox:
    def __init__(
        self,
        emulator: ApiServerEmulator,
        pod: dict[str, Any],
        ip: str,
        root: Path,
        api_url: str | None,
        resolve: Callable[[str, str], str | None],
    ) -> None:
        self.emulator, self.pod, self.ip, self.root = emulator, pod, ip, root
        self.namespace = pod["metadata"]["namespace"]
        self.resolve = resolve
        self.mounts: dict[str, Path] = {}
        self.env: dict[str, str] = {}
        root.mkdir(parents=True, exist_ok=True)
        self._volumes()
        if api_url and self._automount():
            self.env["KUBECONFIG"] = str(self._credentials(api_url))

    def rewrite(self, text: str) -> str:
        text = ANY_ADDRESS.sub(self.ip, text)

        def service(match: re.Match[str]) -> str:
            return self.resolve(match.group(3), match.group(1)) or match.group(0)

        text = DNS.sub(service, text)
        if not self.mounts:
            return text
        paths = "|".join(re.escape(m) for m in sorted(self.mounts, key=len, reverse=True))
        return re.sub(rf"(?<![\w/])({paths})(?=/|$)", lambda m: str(self.mounts[m[1]]), text)

    @staticmethod
    def executable(command: str) -> str:
        if command in ("python", "python3"):
            return sys.executable
        beside = Path(sys.executable).parent / command
        return str(beside) if "/" not in command and beside.exists() else command

    def _volumes(self) -> None:
        spec = self.pod["spec"]
        sources = {v["name"]: v for v in spec.get("volumes", [])}
        container = spec["containers"][0]
        for mount in container.get("volumeMounts", []):
            host = self.root / "volumes" / mount["name"]
            host.mkdir(parents=True, exist_ok=True)
            self._fill(host, sources.get(mount["name"], {}))
            self.mounts[mount["mountPath"].rstrip("/")] = host
            if mount["mountPath"].rstrip("/") == "/tmp":
                self.env["TMPDIR"] = str(host)

    def _fill(self, host: Path, volume: dict[str, Any]) -> None:
        store = self.emulator.store.objects
        if "secret" in volume:
            secret = store[("", "secrets")].get((self.namespace, volume["secret"]["secretName"]))
            for key, value in ((secret or {}).get("data") or {}).items():
                (host / key).write_bytes(base64.b64decode(value))
        elif "configMap" in volume:
            cm = store[("", "configmaps")].get((self.namespace, volume["configMap"]["name"]))
            for key, value in ((cm or {}).get("data") or {}).items():
                (host / key).write_text(value)

    def _automount(self) -> bool:
        spec = self.pod["spec"]
        if "automountServiceAccountToken" in spec:
            return bool(spec["automountServiceAccountToken"])
        account = self.emulator.store.objects[("", "serviceaccounts")].get(
            (self.namespace, spec.get("serviceAccountName", "default"))
        )
        return bool((account or {}).get("automountServiceAccountToken", True))

    def _credentials(self, api_url: str) -> Path:
        account = self.pod["spec"].get("serviceAccountName", "default")
        token = uuid.uuid4().hex
        self.emulator.auth.users[token] = f"system:serviceaccount:{self.namespace}:{account}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": {"server": api_url}}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {
                        "cluster": "in-cluster",
                        "user": account,
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "in-cluster",
        }
        path = self.root / "serviceaccount.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path
