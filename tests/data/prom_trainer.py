"""A trainer that knows nothing of kubetune: it serves its metrics with prometheus-client only.

Each epoch it sets gauges `val_accuracy = quality * (1 - 0.5**epoch)` and `step`, then waits
until a scrape has seen them (so no epoch is skipped, however busy the machine), and exits after
the last one. Port: --port, else $KUBETUNE_METRICS_PORT. `--nan-at N` publishes NaN at epoch N.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server


class Scrapes:
    """Counts scrapes: the registry calls collect() once per scrape."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def collect(self) -> list[Any]:
        with self.changed:
            self.count += 1
            self.changed.notify_all()
        return []

    def wait_past(self, seen: int, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.count > seen, timeout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KUBETUNE_METRICS_PORT", 0)))
    parser.add_argument("--nan-at", type=int, default=-1)
    args = parser.parse_args()
    registry = CollectorRegistry()
    step = Gauge("step", "Epochs done.", registry=registry)
    accuracy = Gauge("val_accuracy", "Validation accuracy.", registry=registry)
    loss = Gauge("val_loss", "Validation loss.", registry=registry)
    scrapes = Scrapes()
    registry.register(scrapes)  # type: ignore[arg-type]
    start_http_server(args.port, args.host, registry=registry)
    print(f"serving on {args.host}:{args.port}", flush=True)
    for epoch in range(1, args.epochs + 1):
        value = args.quality * (1 - 0.5**epoch)
        accuracy.set(float("nan") if epoch == args.nan_at else value)
        loss.set(1 - value)
        step.set(epoch)
        # the scrape counted next may have read `step` before this epoch: wait for the one after
        scrapes.wait_past(scrapes.count + 1, 60)
        print(f"epoch {epoch}: val_accuracy={value:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
