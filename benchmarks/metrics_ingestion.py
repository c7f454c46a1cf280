"""Metrics ingestion: sustained accepted reports per second over loopback, batched and unary.

    .venv/bin/python benchmarks/metrics_ingestion.py [--clients 8] [--reports 40000]

The local runner's real backend (SQLite, each batch committed before the reply, ASHA judging
the points that cross a rung) serves on 127.0.0.1; `--clients` processes report as fast as they
can, each as its own trial with its own token:

- batched: `kubetune.report(...)` itself (buffer, sender thread, ReportBatch, verdicts at
  rungs); latency is measured per point, from the `report` call to the reply that acknowledged
  it, and the time `report` itself takes;
- batched again, paced: the clients together offer `--paced` reports/s (5,000), so the
  latency is that of a server that keeps up rather than of a queue;
- unary (the peer, same run): one blocking `Report` call per point, what `kubetune.report` did
  before batching.

Afterwards every point must be in the store: none lost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from kubetune.intake import MetricsIntake
from kubetune.local import Store, StoreTrials
from kubetune.rpc import kubetune_pb2 as pb
from kubetune.rpc import kubetune_pb2_grpc as pb_grpc
from kubetune.rpc.server import serve
from kubetune.spec import TuningJob

RESULTS = Path(__file__).parent / "results"


def batched_client(
    address: str, trial: str, reports: int, start: Any, out: Any, rate: float = 0.0
) -> None:
    os.environ.update(
        KUBETUNE_METRICS_ADDR=address, KUBETUNE_TRIAL=trial, KUBETUNE_TRIAL_TOKEN=trial
    )
    import kubetune
    from kubetune import _report

    called: dict[int, float] = {}
    acked: dict[int, float] = {}
    settle = _report._Reporter._settle

    def timed_settle(self: Any, batch: list[Any], *args: Any) -> None:  # ack time per point
        now = time.perf_counter()
        for seq, _ in batch:
            acked.setdefault(seq, now)
        settle(self, batch, *args)

    _report._Reporter._settle = timed_settle  # type: ignore[method-assign]
    call_seconds = []
    start.ready.release()
    start.go.wait()
    first = time.perf_counter()
    for step in range(reports):
        if rate:  # paced: the step-th report is due at first + step / rate (10 ms bursts)
            ahead = first + step / rate - time.perf_counter()
            if ahead > 0.01:
                time.sleep(ahead)
        began = time.perf_counter()
        called[step + 1] = began
        kubetune.report(step, acc=0.5, loss=1.0)
        call_seconds.append(time.perf_counter() - began)
    kubetune.flush()
    out.put((call_seconds, [acked[s] - called[s] for s in called]))


def unary_client(
    address: str, trial: str, reports: int, start: Any, out: Any, rate: float = 0.0
) -> None:
    stub = pb_grpc.MetricsServiceStub(grpc.insecure_channel(address))
    seconds = []
    start.ready.release()
    start.go.wait()
    for step in range(reports):
        began = time.perf_counter()
        stub.Report(
            pb.ReportRequest(
                trial=trial, token=trial.encode(), step=step, metrics={"acc": 0.5, "loss": 1.0}
            ),
            timeout=30,
        )
        seconds.append(time.perf_counter() - began)
    out.put((seconds, seconds))


class Start(NamedTuple):
    ready: Any  # a semaphore each client releases once it is ready
    go: Any  # the event that starts them all


def asha_job(max_epochs: int) -> TuningJob:
    """A one-parameter job with ASHA, so that reports are judged at rungs."""
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


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(mode: str, clients: int, reports: int, rate: float = 0.0) -> dict[str, Any]:
    """`rate`: reports per second offered in all (0: as fast as the clients can)."""
    target = batched_client if mode == "batched" else unary_client
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db", "acc")
        names = [f"bench-{i}" for i in range(clients)]
        for i, name in enumerate(names):
            store.add_trial(name, i, {"x": 0.5}, None, name)
            store.set_state(name, "running")
        server = serve(metrics=MetricsIntake(StoreTrials(store, asha_job(10**9).spec)))
        ctx = mp.get_context("spawn")
        start, out = Start(ctx.Semaphore(0), ctx.Event()), ctx.Queue()
        procs = [
            ctx.Process(
                target=target, args=(server.address, n, reports, start, out, rate / clients)
            )
            for n in names
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every client has imported what it needs
            start.ready.acquire(timeout=300)
        began = time.perf_counter()
        start.go.set()
        gathered = [out.get(timeout=600) for _ in procs]
        took = time.perf_counter() - began
        for p in procs:
            p.join()
        server.stop(0)
        stored = store.metric_count()
    calls = [s for c, _ in gathered for s in c]
    acks = [s for _, a in gathered for s in a]
    total = clients * reports
    result = {
        "offered_per_second": rate or "as fast as possible",
        "reports": total,
        "seconds": round(took, 3),
        "reports_per_second": round(total / took),
        "lost": total * 2 - stored,
        "report_call_p50_ms": round(statistics.median(calls) * 1000, 3),
        "report_call_p99_ms": round(quantile(calls, 0.99) * 1000, 3),
        "ack_p50_ms": round(statistics.median(acks) * 1000, 3),
        "ack_p99_ms": round(quantile(acks, 0.99) * 1000, 3),
        "failed_clients": sum(1 for p in procs if p.exitcode),
    }
    print(mode, json.dumps(result), flush=True)
    if result["lost"] or result["failed_clients"]:
        raise SystemExit("clients failed or reports were lost")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--reports", type=int, default=40_000, help="per client, batched")
    parser.add_argument("--paced-reports", type=int, default=10_000, help="per client, paced")
    parser.add_argument("--unary-reports", type=int, default=1_500, help="per client, unary peer")
    parser.add_argument("--paced", type=float, default=5_000, help="offered rate for latency")
    args = parser.parse_args()
    batched = run("batched", args.clients, args.reports)
    paced = run("batched", args.clients, args.paced_reports, args.paced)
    unary = run("unary", args.clients, args.unary_reports)
    RESULTS.mkdir(exist_ok=True)
    out = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "batched": batched,
        "batched_paced": paced,
        "unary": unary,
        "speedup": round(batched["reports_per_second"] / unary["reports_per_second"], 2),
    }
    (RESULTS / "metrics_ingestion.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"batched/unary: x{out['speedup']}")


if __name__ == "__main__":
    main()
