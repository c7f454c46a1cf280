"""`kubetune-suggestion` as a real process: health, suggestions over gRPC, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubetune.rpc.server import SUGGESTION
from kubetune.rpc.suggestion import SuggestionClient
from kubetune.search import create_suggester

from .conftest import make_spec
from .waiting import free_port


def test_suggestion_service_process_requires_its_token(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "token").write_text("shared-secret\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubetune_operator.suggestion_main",
            "--address",
            f"127.0.0.1:{port}",
            "--token-file",
            str(tmp_path / "token"),
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
        spec = make_spec("random", seed=4, parallelism=3)
        for wrong in (None, "shared-secreT", "shared-secret-and-more"):
            stranger = SuggestionClient(f"127.0.0.1:{port}", token=wrong)
            with pytest.raises(grpc.RpcError) as info:
                stranger.suggest(spec, [], 3)
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
            stranger.close()
        client = SuggestionClient(f"127.0.0.1:{port}", token="shared-secret")
        assert client.suggest(spec, [], 3) == create_suggester(spec).suggest([], 3)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_suggestion_service_refuses_to_listen_openly_without_a_token() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubetune_operator.suggestion_main", "--address", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--token-file: required to listen on 0.0.0.0:0" in result.stderr
