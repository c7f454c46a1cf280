"""Kubernetes credentials as `kubectl` finds them, for every part of kubetune that talks to a
cluster (the client's cluster backend, the operator, its self-test): `KUBECONFIG` (a list of
files), else `~/.kube/config`, else the service account of the pod we run in. `context` picks a
kubeconfig context (`--context`). Loading, exec plugins and token refresh are the official
`kubernetes` client's."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

from .client._errors import ConfigError

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def kubeconfig_files() -> list[Path]:
    """The kubeconfig files `kubectl` would read, in order (they need not exist)."""
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def connect(context: str | None = None) -> tuple[client.ApiClient, str]:
    """An API client, and the namespace the credentials point at ("default" if none)."""
    configuration, namespace = load(context)
    return client.ApiClient(configuration), namespace


def load(context: str | None = None) -> tuple[client.Configuration, str]:
    """The client configuration, and the namespace the credentials point at. Raises
    ConfigError naming what was tried."""
    files = kubeconfig_files()
    present = [f for f in files if f.is_file()]
    if present or context:
        return _from_kubeconfig(files, present, context)
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        where = "KUBECONFIG=" + os.environ["KUBECONFIG"] if "KUBECONFIG" in os.environ else files[0]
        raise ConfigError(
            f"no Kubernetes credentials: tried {where} (no such file) and the in-cluster "
            "service account (not running in a pod); set KUBECONFIG or give --context, "
            "or --workdir for local runs"
        ) from None
    namespace = "default"
    if IN_CLUSTER_NAMESPACE.is_file():
        namespace = IN_CLUSTER_NAMESPACE.read_text().strip() or namespace
    return configuration, namespace


def _from_kubeconfig(
    files: list[Path], present: list[Path], context: str | None
) -> tuple[client.Configuration, str]:
    joined = os.pathsep.join(str(f) for f in files)
    if not present:
        raise ConfigError(f"no kubeconfig: {joined} does not exist (needed for --context)")
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=joined, context=context, client_configuration=configuration
        )  # type: ignore[no-untyped-call]
        contexts, active = config.list_kube_config_contexts(config_file=joined)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"kubeconfig {joined}: {exc}") from None
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return configuration, str(namespace)
