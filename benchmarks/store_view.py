"""The local runner's cost per report and per decision with 200,000 points already stored.

    .venv/bin/python benchmarks/store_view.py [--trials 200 --steps 1000 --reports 2000]

Builds a store with `trials` times `steps` objective points (ASHA judging, so every report reads the
other trials' curves), then measures in one run:
- per report: CPU seconds of `MetricsIntake.report_batch` over `StoreTrials` (commit, in-memory view, ASHA verdict);
- per decision: wall seconds of `Store.trials()`, the view every decision reads;
- the peer: a full reload of the metrics table into curves, as the store did before the view.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from kubetune.intake import MetricsIntake
from kubetune.local import Store, StoreTrials
from metrics_ingestion import asha_job

RESULTS = Path(__file__).parent / "results"


def full_reload(store: Store) -> dict[str, list[tuple[int, float]]]:
    """What each decision cost before the in-memory view: every current point, re-read."""
    with store.lock:
        rows = store.db.execute(
            "SELECT m.trial, m.step, m.name, m.value FROM metrics m JOIN trials t"
            " ON m.trial = t.name AND m.attempt = t.attempts ORDER BY m.trial, m.step"
        ).fetchall()
    curves: dict[str, list[tuple[int, float]]] = {}
    for trial, step, name, value in rows:
        if name == store.objective and value is not None:
            curves.setdefault(trial, []).append((step, value))
    return curves


def timed(fn: Any, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=2000)
    args = parser.parse_args()
    job = asha_job(10**6)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db", "acc")
        for i in range(args.trials):
            name = f"t-{i}"
            store.add_trial(name, i, {"x": 0.5}, None, name)
            store.set_state(name, "running", attempts=1)
            with store.transaction() as db:  # bulk load: one transaction per trial
                db.executemany(
                    "INSERT INTO metrics VALUES (?, 1, ?, 'acc', ?, 0)",
                    [(name, s, 0.5 + 0.4 * s / args.steps) for s in range(args.steps)],
                )
        store.close()
        start = time.perf_counter()
        store = Store(Path(tmp) / "state.db", "acc")  # what a resume pays, once
        load = time.perf_counter() - start
        points = sum(len(c) for c in store.curves().values())
        backend = MetricsIntake(StoreTrials(store, job.spec))
        reporter = "t-0"
        cpu = time.process_time()
        for n in range(args.reports):
            backend.report(reporter, reporter, args.steps + n, {"acc": 0.95, "loss": 0.1}, [])
        per_report = (time.process_time() - cpu) / args.reports
        per_decision = timed(store.trials, 20)
        per_reload = timed(lambda: full_reload(store), 5)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "points_stored": points,
        "load_seconds": round(load, 3),
        "report_cpu_ms": round(per_report * 1000, 3),
        "decision_view_ms": round(per_decision * 1000, 2),
        "full_reload_ms": round(per_reload * 1000, 1),
        "reload_over_view": round(per_reload / per_decision, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store_view.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
