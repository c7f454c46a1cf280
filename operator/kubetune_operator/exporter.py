"""The operator's Prometheus side: per-job series from the cache, its own health, and the
pull collector's targets (running trial pods of jobs whose metrics are scraped).

`OperatorHealth` counts reconciles, Kubernetes API requests, work-queue waits and event-loop
lag in the process's `Telemetry` registry; `job_counts` and `scrape_targets` are pure reads of the cache.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from kubetune.spec import TrialCounts, TrialState, TuningJobSpec
from kubetune.telemetry import JobCounts, Target, Telemetry
from prometheus_client import Counter, Gauge, Histogram

from .cache import Cache, Key
from .status import condition

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SCRAPE_CONDITION = "MetricsCollected"
log = logging.getLogger("kubetune.operator")


class OperatorHealth:
    """Reconciles, Kubernetes API requests and the work queue, as Prometheus metrics."""

    def __init__(self, telemetry: Telemetry, queue_depth: Callable[[], int]) -> None:
        r = telemetry.registry
        self.reconcile_duration = Histogram(
            "kubetune_reconcile_duration_seconds",
            "Time to reconcile one TuningJob.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "kubetune_reconcile_errors", "Reconciles that failed (and were retried).", registry=r
        )
        self.api_requests = Counter(
            "kubetune_kube_api_requests",
            "Kubernetes API requests made by the operator, by verb and HTTP code.",
            ["verb", "code"],
            registry=r,
        )
        self.queue_latency = Histogram(
            "kubetune_workqueue_latency_seconds",
            "Time a TuningJob waited in the work queue before a worker took it.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "kubetune_event_loop_lag_seconds",
            "How late the operator's event loop ran a timer: time spent in code that blocked it.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        depth = Gauge(
            "kubetune_workqueue_depth", "TuningJobs waiting in the work queue.", registry=r
        )
        depth.set_function(lambda: float(queue_depth()))

    def api_request(self, verb: str, code: int | str) -> None:
        self.api_requests.labels(verb, str(code)).inc()

    async def watch_loop_lag(self, period: float = 0.05, warn_over: float = 0.25) -> None:
        """Sleep `period` again and again; whatever more it takes is the loop's lag (a stall
        over `warn_over` seconds is also logged, with when it happened)."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(period)
            lag = max(0.0, loop.time() - began - period)
            self.loop_lag.observe(lag)
            if lag > warn_over:
                log.warning("the event loop stalled for %.2f s", lag)


def job_counts(cache: Cache) -> list[JobCounts]:
    """Every cached TuningJob as a scrape shows it, from its status (what `kubectl get` shows)."""
    jobs = []
    for job in cache.all("tuningjobs"):
        meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
        counts = TrialCounts.model_validate(status.get("trials") or {})
        best = (status.get("bestTrial") or {}).get("objective")
        jobs.append(
            JobCounts(
                meta.get("namespace", ""),
                meta["name"],
                status.get("phase") or "Pending",
                counts,
                int(spec.get("maxTrials") or 0),
                float(best) if best is not None else None,
                status.get("paretoFrontSize"),
                status.get("hypervolume"),
            )
        )
    return jobs


def scrape_targets(
    spec: TuningJobSpec,
    trials: Mapping[str, Mapping[str, Any]],
    pods: Mapping[str, Mapping[str, Any]],
) -> dict[Hashable, Target]:
    """The endpoints to scrape for one job: pods running for trials that take reports."""
    collector = spec.collector
    if collector.kind != "prometheus":
        return {}
    names = (spec.objective.metric, *spec.objective.additional_metrics)
    targets: dict[Hashable, Target] = {}
    for name, trial in trials.items():
        state = TrialState.from_phase((trial.get("status") or {}).get("phase"))
        pod = pods.get(name) or {}
        ip = (pod.get("status") or {}).get("podIP")
        if state.final or not ip:
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        host = f"[{ip}]" if ":" in ip else ip
        key: Key = (trial["metadata"].get("namespace", ""), name)
        targets[key] = Target(
            f"http://{host}:{collector.port}{collector.url_path}",
            names,
            collector.step_gauge,
            collector.interval_seconds,
            collector.timeout_seconds,
        )
    return targets


def scrape_condition(
    trial: Mapping[str, Any], reason: str | None, message: str, now: str
) -> dict[str, Any]:
    """The trial's conditions with MetricsCollected set (reason None: it works)."""
    old = list((trial.get("status") or {}).get("conditions") or [])
    if reason is None:
        new = condition(old, SCRAPE_CONDITION, True, "Scraped", "", now)
    else:
        label = "".join(part.title() for part in reason.split("_"))
        new = condition(old, SCRAPE_CONDITION, False, f"Scrape{label}", message, now)
    return {"conditions": [c for c in old if c.get("type") != SCRAPE_CONDITION] + [new]}


def seconds_since(stamp: str | None) -> float | None:
    """Seconds from an RFC 3339 time (as in status.startTime) to now; None if absent."""
    if not stamp:
        return None
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()
