"""`kubetune-suggestion` as a real process: health, suggestions over gRPC, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubetune.rpc.server import SUGGESTION
from kubetune.rpc.suggestion import SuggestionClient
from kubetune.search import create_suggester

from .conftest import make_spec
from .test_rpc import free_port


def test_suggestion_service_process() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubetune_operator.suggestion_main",
            "--address",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"listening on 127.0.0.1:{port}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=SUGGESTION), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        spec = make_spec("random", seed=4)
        client = SuggestionClient(f"127.0.0.1:{port}")
        assert client.suggest(spec, [], 3) == create_suggester(spec).suggest([], 3)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
