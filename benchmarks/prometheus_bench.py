"""Prometheus costs: rendering the operator's /metrics, and scraping trial endpoints.

    .venv/bin/python benchmarks/prometheus_bench.py [--jobs 100 --trials 1000 --endpoints 200]

- render: the operator's `/metrics` (its Telemetry over a cache holding `jobs` TuningJobs of
  `trials` Trials each, with every event metric populated), rendered `--renders` times;
  p50/p95 milliseconds. Goal: <= 50 ms at 100 x 1,000.
- pull: a PullCollector scraping `endpoints` trial endpoints every `--interval` seconds for
  `--seconds`; the endpoints are served by another process (a prometheus-client page like a
  trainer's: step, three gauges and the default process/platform/GC collectors). CPU of the
  collector's process as a share of one core. Goal: < 10% at 200 endpoints, 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubetune.telemetry import PullCollector, Target, Telemetry
from kubetune_operator.cache import Cache
from kubetune_operator.exporter import OperatorHealth, job_counts

RESULTS = Path(__file__).parent / "results"

SERVE = """
import asyncio, sys
from aiohttp import web
from prometheus_client import REGISTRY, Gauge, generate_latest
step = Gauge("step", "epochs"); step.set(3)
for name in ("val_accuracy", "val_loss", "lr"):
    Gauge(name, name).set(0.5)
page = generate_latest(REGISTRY)
async def metrics(request):
    return web.Response(body=page, content_type="text/plain")
async def main(first, count):
    app = web.Application(); app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    for port in range(first, first + count):
        await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", len(page), flush=True)
    await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def populated_cache(jobs: int, trials: int) -> Cache:
    cache = Cache()
    for j in range(jobs):
        name = f"job-{j}"
        counts = {"created": trials, "running": 20, "succeeded": trials - 120, "stopped": 90}
        cache.put(
            "tuningjobs",
            {
                "metadata": {"name": name, "namespace": f"ns-{j % 10}", "resourceVersion": "1"},
                "spec": {"maxTrials": trials},
                "status": {
                    "phase": "Running",
                    "trials": {**counts, "failed": 10},
                    "bestTrial": {"name": f"{name}-7", "params": {}, "objective": 0.9 + j / 1e4},
                },
            },
        )
        for i in range(trials):
            cache.put(
                "trials",
                {
                    "metadata": {
                        "name": f"{name}-{i}",
                        "namespace": f"ns-{j % 10}",
                        "resourceVersion": "1",
                        "labels": {"kubetune.dev/job": name},
                    },
                    "spec": {"job": name, "index": i, "params": {"lr": 0.1}},
                    "status": {"phase": "Succeeded", "objective": 0.5},
                },
            )
    return cache


def bench_render(jobs: int, trials: int, renders: int) -> dict[str, Any]:
    cache = populated_cache(jobs, trials)
    telemetry = Telemetry(lambda: job_counts(cache))
    health = OperatorHealth(telemetry, lambda: 3)
    for algorithm in ("bayesian", "random", "grid", "hyperband"):
        telemetry.suggest_duration.labels(algorithm).observe(0.05)
    for result in ("accepted", "non_finite", "bad_token", "unknown_trial", "trial_ended"):
        telemetry.report(result)
    for verb in ("create", "patch", "delete"):
        for code in (200, 201, 404, 409):
            health.api_request(verb, code)
    telemetry.stop_decision("asha", True)
    telemetry.trial_ended(60)
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        text = telemetry.render()
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "jobs": jobs,
        "trials_per_job": trials,
        "bytes": len(text),
        "series": sum(1 for line in text.decode().splitlines() if not line.startswith("#")),
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))],
    }


def bench_pull(endpoints: int, interval: float, seconds: float) -> dict[str, Any]:
    first = 20000
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(first), str(endpoints)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        page_bytes = int(ready[1])
        delivered: list[int] = []
        telemetry = Telemetry()
        collector = PullCollector(
            lambda key, sample: delivered.append(sample.step), lambda key, problem: None, telemetry
        )
        targets = {
            port: Target(
                f"http://127.0.0.1:{port}/metrics",
                ("val_accuracy", "val_loss"),
                "step",
                interval,
                5,
            )
            for port in range(first, first + endpoints)
        }
        cpu0, wall0 = time.process_time(), time.monotonic()
        collector.set_targets("bench", targets)  # type: ignore[arg-type]
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        scrapes = sum(
            s.value
            for m in telemetry.registry.collect()
            if m.name == "kubetune_scrapes"
            for s in m.samples
            if s.name == "kubetune_scrapes_total"
        )
        collector.close()
    finally:
        server.kill()
        server.wait()
    return {
        "endpoints": endpoints,
        "interval_s": interval,
        "seconds": round(wall, 1),
        "scrapes": int(scrapes),
        "page_bytes": page_bytes,
        "cpu_s": round(cpu, 3),
        "cpu_share_of_one_core": cpu / wall,
        "cpu_ms_per_scrape": 1000 * cpu / max(scrapes, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "render": bench_render(args.jobs, args.trials, args.renders),
        "pull": bench_pull(args.endpoints, args.interval, args.seconds),
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prometheus.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
