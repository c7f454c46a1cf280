"""Start gRPC servers for kubetune's services, with standard gRPC health checking.

Every server has explicit message-size bounds. Given a shared `suggestion_token`, the
SuggestionService answers only calls that carry `authorization: Bearer <token>` (the operator's);
health checks stay open for the kubelet's probes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import kubetune_pb2_grpc as pb_grpc
from . import tokens
from .limits import METRICS_MESSAGE_BYTES, SUGGESTION_MESSAGE_BYTES
from .metrics import MetricsBackend, MetricsServicer
from .suggestion import SuggestionServicer

SUGGESTION = "kubetune.v1alpha1.SuggestionService"
METRICS = "kubetune.v1alpha1.MetricsService"


class Server:
    """A running gRPC server; `port` is the bound port (useful with address ':0')."""

    def __init__(self, server: grpc.Server, port: int, host: str) -> None:
        self.server = server
        self.port = port
        self.address = f"{host}:{port}"

    def stop(self, grace: float | None = 1.0) -> None:
        self.server.stop(grace).wait()


class RequireToken(grpc.ServerInterceptor):
    """Rejects calls to one service that lack the shared bearer token (UNAUTHENTICATED)."""

    def __init__(self, service: str, token: str) -> None:
        self.prefix, self.expected = f"/{service}/", f"Bearer {token}"

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{service}: a valid token is required")

        self.deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if not details.method.startswith(self.prefix):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if isinstance(given, str) and tokens.matches(self.expected, given):
            return continuation(details)
        return self.deny


def serve(
    address: str = "127.0.0.1:0",
    metrics: MetricsBackend | None = None,
    suggestions: bool = False,
    workers: int = 16,
    suggestion_token: str | None = None,
    observe_report: Callable[[str], None] = lambda _: None,
) -> Server:
    """Serve the MetricsService (given a backend) and/or the SuggestionService on `address`."""
    size = max(
        SUGGESTION_MESSAGE_BYTES if suggestions else 0, METRICS_MESSAGE_BYTES if metrics else 0
    )
    interceptors = [RequireToken(SUGGESTION, suggestion_token)] if suggestion_token else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if metrics is not None:
        pb_grpc.add_MetricsServiceServicer_to_server(
            MetricsServicer(metrics, observe_report), server
        )
        health_servicer.set(METRICS, health_pb2.HealthCheckResponse.SERVING)
    if suggestions:
        pb_grpc.add_SuggestionServiceServicer_to_server(SuggestionServicer(), server)
        health_servicer.set(SUGGESTION, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    server.start()
    host = address.rsplit(":", 1)[0] or "127.0.0.1"
    return Server(server, port, host)
