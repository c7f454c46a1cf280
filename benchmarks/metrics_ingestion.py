"""Metrics ingestion: sustained MetricsService.Report calls per second over loopback.

    .venv/bin/python benchmarks/metrics_ingestion.py [--clients 8] [--reports 1500]

The local runner's real backend (SQLite, each report committed before the reply, ASHA judging
every report) serves on 127.0.0.1; `--clients` processes report concurrently, each with its own
trial and token. Afterwards every report must be in the store: none lost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import grpc
from kubetune.local import Store, StoreMetrics
from kubetune.rpc import kubetune_pb2 as pb
from kubetune.rpc import kubetune_pb2_grpc as pb_grpc
from kubetune.rpc.server import serve
from kubetune.spec import TuningJob

RESULTS = Path(__file__).parent / "results"


def client(address: str, trial: str, reports: int, start: mp.Event) -> None:  # type: ignore[valid-type]
    stub = pb_grpc.MetricsServiceStub(grpc.insecure_channel(address))
    start.wait()  # type: ignore[attr-defined]
    for step in range(reports):
        stub.Report(
            pb.ReportRequest(
                trial=trial, token=trial.encode(), step=step, metrics={"acc": 0.5, "loss": 1.0}
            ),
            timeout=30,
        )


def asha_job(max_epochs: int) -> TuningJob:
    """A one-parameter job with ASHA, so that every report is judged (the costly path)."""
    return TuningJob.parse(
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": "bench"},
            "spec": {
                "objective": {"metric": "acc", "direction": "maximize"},
                "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
                "algorithm": {"name": "random"},
                "earlyStopping": {"name": "asha"},
                "resource": {"name": "epochs", "min": 1, "max": max_epochs},
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--reports", type=int, default=1500, help="per client")
    args = parser.parse_args()
    job = asha_job(100000)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db", "acc")
        names = [f"bench-{i}" for i in range(args.clients)]
        for i, name in enumerate(names):
            store.add_trial(name, i, {"x": 0.5}, None, name)
            store.set_state(name, "running")
        server = serve(metrics=StoreMetrics(store, job, lambda: None))
        start = mp.Event()
        procs = [
            mp.Process(target=client, args=(server.address, n, args.reports, start)) for n in names
        ]
        for p in procs:
            p.start()
        time.sleep(3.0)  # spawned interpreters import grpc
        began = time.perf_counter()
        start.set()
        for p in procs:
            p.join()
        took = time.perf_counter() - began
        server.stop(0)
        stored = store.metric_count()
    total = args.clients * args.reports
    rate = total / took
    lost = total * 2 - stored
    print(
        f"{total} reports from {args.clients} clients in {took:.2f}s: {rate:,.0f} reports/s; lost {lost}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "reports": total,
        "seconds": took,
        "reports_per_second": rate,
        "lost": lost,
    }
    (RESULTS / "metrics_ingestion.json").write_text(json.dumps(out, indent=2))
    if any(p.exitcode for p in procs) or lost:
        raise SystemExit("clients failed or reports were lost")


if __name__ == "__main__":
    main()
