"""Start gRPC servers for kubetune's services, with standard gRPC health checking."""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import kubetune_pb2_grpc as pb_grpc
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


def serve(
    address: str = "127.0.0.1:0",
    metrics: MetricsBackend | None = None,
    suggestions: bool = False,
    workers: int = 16,
) -> Server:
    """Serve the MetricsService (given a backend) and/or the SuggestionService on `address`."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if metrics is not None:
        pb_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(metrics), server)
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
