"""kubetune's Prometheus metrics: one registry per process, rendered by `prometheus-client`.

Event metrics (suggest latency, stop decisions, reports, trial durations) are counted where they
happen. Per-job series are computed at scrape time from `JobCounts` that the process already
holds (the operator's cache, the local runner's store), so a deleted job's series disappear and
no trial ever becomes a label. `Telemetry.serve` starts the `/metrics` endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..spec import TrialCounts, TrialState

RESULTS = tuple(s.value for s in TrialState if s.final)
COUNTED = tuple(s.value for s in TrialState if s is not TrialState.pending)  # TrialCounts
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
T = TypeVar("T")


def kubetune_version() -> str:
    try:
        return version("kubetune")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class JobCounts:
    """What a scrape shows of one job."""

    namespace: str
    name: str
    phase: str
    trials: TrialCounts = field(default_factory=TrialCounts)
    max_trials: int = 0
    best: float | None = None
    front_size: int | None = None  # with several objectives
    hypervolume: float | None = None


class JobCollector(Collector):
    """Per-job series, computed at each scrape from `jobs()`."""

    def __init__(self, jobs: Callable[[], Iterable[JobCounts]]) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Any]:
        labels = ["namespace", "tuningjob"]
        trials = GaugeMetricFamily(
            "kubetune_trials", "Trials of a TuningJob by state.", labels=[*labels, "state"]
        )
        best = GaugeMetricFamily(
            "kubetune_best_objective", "Best objective value of a TuningJob so far.", labels=labels
        )
        created = CounterMetricFamily(
            "kubetune_trials_created", "Trials created for a TuningJob.", labels=labels
        )
        finished = CounterMetricFamily(
            "kubetune_trials_finished",
            "Trials of a TuningJob that ended, by result.",
            labels=[*labels, "result"],
        )
        phase = GaugeMetricFamily(
            "kubetune_tuningjob_phase",
            "1 for the current phase of a TuningJob.",
            labels=[*labels, "phase"],
        )
        budget = GaugeMetricFamily(
            "kubetune_tuningjob_max_trials", "spec.maxTrials of a TuningJob.", labels=labels
        )
        front = GaugeMetricFamily(
            "kubetune_pareto_front_size",
            "Trials on the Pareto front of a TuningJob with several objectives.",
            labels=labels,
        )
        volume = GaugeMetricFamily(
            "kubetune_hypervolume",
            "Hypervolume the Pareto front of a TuningJob dominates (losses, up to the "
            "reference point).",
            labels=labels,
        )
        for job in self.jobs():
            key = [job.namespace, job.name]
            for state in COUNTED:
                trials.add_metric([*key, state], getattr(job.trials, state))
            for result in RESULTS:
                finished.add_metric([*key, result], getattr(job.trials, result))
            created.add_metric(key, job.trials.created)
            phase.add_metric([*key, job.phase], 1)
            budget.add_metric(key, job.max_trials)
            if job.best is not None:
                best.add_metric(key, job.best)
            if job.front_size is not None:
                front.add_metric(key, job.front_size)
            if job.hypervolume is not None:
                volume.add_metric(key, job.hypervolume)
        yield from (trials, best, created, finished, phase, budget, front, volume)

    def describe(self) -> Iterator[Any]:
        return iter(())  # computed at scrape time: nothing to check at registration


class Telemetry:
    """The metrics of one kubetune process (the operator, or one `kubetune run`)."""

    def __init__(self, jobs: Callable[[], Iterable[JobCounts]] = tuple) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Info("kubetune_build", "kubetune's version.", registry=r).info(
            {"version": kubetune_version()}
        )
        r.register(JobCollector(jobs))
        self.trial_duration = Histogram(
            "kubetune_trial_duration_seconds",
            "Run time of ended trials, start to end.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.suggest_duration = Histogram(
            "kubetune_suggest_duration_seconds",
            "Time to get suggestions, by search algorithm.",
            ["algorithm"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.suggest_errors = Counter(
            "kubetune_suggest_errors",
            "Suggestion calls that failed, by search algorithm.",
            ["algorithm"],
            registry=r,
        )
        self.stop_decisions = Counter(
            "kubetune_early_stop_decisions",
            "Early-stopping verdicts, by rule and decision (stop or continue).",
            ["rule", "decision"],
            registry=r,
        )
        self.reports = Counter(
            "kubetune_metric_reports",
            "Metric reports (pushed or scraped): accepted, or why they were rejected.",
            ["result"],
            registry=r,
        )
        self.scrapes = Counter(
            "kubetune_scrapes",
            "Scrapes of trial metrics endpoints, by result (ok or why they failed).",
            ["result"],
            registry=r,
        )
        self.scrape_duration = Histogram(
            "kubetune_scrape_duration_seconds",
            "Time to scrape one trial's metrics endpoint.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scrape_targets = Gauge(
            "kubetune_scrape_targets", "Trial endpoints being scraped.", registry=r
        )

    def timed_suggest(self, suggest: Callable[..., T]) -> Callable[..., T]:
        """`suggest(spec, history, count)`, timed into kubetune_suggest_duration_seconds by
        the spec's algorithm (failures counted in kubetune_suggest_errors_total)."""

        def timed(spec: Any, *args: Any, **kwargs: Any) -> T:
            algorithm = str(spec.algorithm.name)
            started = time.perf_counter()
            try:
                return suggest(spec, *args, **kwargs)
            except Exception:
                self.suggest_errors.labels(algorithm).inc()
                raise
            finally:
                self.suggest_duration.labels(algorithm).observe(time.perf_counter() - started)

        return timed

    def stop_decision(self, rule: str, stop: bool) -> None:
        self.stop_decisions.labels(rule, "stop" if stop else "continue").inc()

    def report(self, result: str) -> None:
        self.reports.labels(result).inc()

    def trial_ended(self, seconds: float | None) -> None:
        if seconds is not None and seconds >= 0:
            self.trial_duration.observe(seconds)

    def render(self) -> bytes:
        """The exposition text, as `/metrics` serves it."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> MetricsEndpoint:
        """Serve `/metrics` over HTTP on host:port (port 0: any free port)."""
        server, thread = start_http_server(port, host, registry=self.registry)
        return MetricsEndpoint(server, thread)


class MetricsEndpoint:
    """A running `/metrics` HTTP server."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread
        self.port: int = server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
