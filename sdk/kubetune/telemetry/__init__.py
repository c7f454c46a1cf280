"""Prometheus for kubetune: the `/metrics` exporter and the pull collector of trial metrics.

Used by both drivers (the operator and the local runner); the search, stopping and decision
core never import it.
"""

from ._export import JobCounts, MetricsEndpoint, Telemetry
from ._scrape import PullCollector, Sample, ScrapeError, Target, fetch, read_sample

__all__ = [
    "JobCounts",
    "MetricsEndpoint",
    "PullCollector",
    "Sample",
    "ScrapeError",
    "Target",
    "Telemetry",
    "fetch",
    "read_sample",
]
