"""Readiness probes as the test kubelet runs them: tcpSocket, httpGet and gRPC health."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {container['name']} has no port named {port!r}")


def passes(probe: dict[str, Any], container: dict[str, Any], ip: str) -> bool:
    timeout = probe.get("timeoutSeconds", 1)
    try:
        if "grpc" in probe:
            port = container_port(container, probe["grpc"]["port"])
            with grpc.insecure_channel(f"{ip}:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")),
                    timeout=timeout,
                )
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = container_port(container, get["port"])
            url = f"{get.get('scheme', 'HTTP').lower()}://{ip}:{port}{get.get('path', '/')}"
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return 200 <= reply.status < 400
        if "tcpSocket" in probe:
            port = container_port(container, probe["tcpSocket"]["port"])
            with socket.create_connection((ip, port), timeout=timeout):
                return True
    except (OSError, ValueError, grpc.RpcError, urllib.error.URLError):
        return False
    return False  # exec probes: not supported on the test node
