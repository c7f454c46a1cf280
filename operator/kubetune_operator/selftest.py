"""`python -m kubetune_operator.selftest`: the chart's `helm test` check of a live install.

Passes when the suggestion service answers gRPC health with SERVING and the API server serves
TuningJob and Trial under kubetune.dev/v1alpha1; otherwise exits 1, naming what failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubernetes import client

from .crds import GROUP, VERSION
from .kube import load_configuration

RESOURCES = {"tuningjobs", "trials"}


def suggestion_serving(address: str, deadline: float) -> str | None:
    """None once `address` reports SERVING; else the last problem when the deadline passes."""
    problem = "not tried"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return None
                problem = f"health status {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
            except grpc.RpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            if time.monotonic() >= deadline:
                return problem
            time.sleep(1)


def crds_served() -> str | None:
    """None when the API server lists both kinds in kubetune.dev/v1alpha1; else what is missing."""
    api = client.ApiClient(load_configuration())
    try:
        found = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    except client.ApiException as exc:
        return f"GET /apis/{GROUP}/{VERSION}: {exc.status} {exc.reason}"
    finally:
        api.close()  # type: ignore[no-untyped-call]
    missing = RESOURCES - {r.name for r in found.resources}
    return f"not served: {', '.join(sorted(missing))}" if missing else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubetune_operator.selftest", description=__doc__
    )
    parser.add_argument("--suggestion", required=True, help="host:port of the suggestion service")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for health")
    args = parser.parse_args(argv)
    checks = {
        f"suggestion service {args.suggestion}": suggestion_serving(
            args.suggestion, time.monotonic() + args.timeout
        ),
        f"CRDs in {GROUP}/{VERSION}": crds_served(),
    }
    for name, problem in checks.items():
        print(
            f"{'FAIL' if problem else 'ok'}: {name}{': ' + problem if problem else ''}", flush=True
        )
    return 1 if any(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
