"""Operator scale in simulation: memory, the largest custom resource, list and reconcile cost.

    python benchmarks/operator_scale.py [--sizes 1000,2500,5000,10000] [--running 2000]

Everything here is the operator's own code run in one process, with no API server: the Trials
are built as the operator writes them (a 6-parameter spec, a 100-epoch curve compacted by the
stopping rule, 8 latest metrics, the token annotation), put in its `Cache`, and measured.

- memory: bytes the cache holds per finished trial (tracemalloc), at each size; and for
  `--running` trials, the report path's per-trial curves (`TrialStatusStore`);
- the largest CR: a Trial at the status bounds (256 metric names of 128 characters, a long
  curve compacted) and the TuningJob's status at the largest size, as JSON bytes;
- list cost: one LIST of every Trial as the API server sends it (bytes, and the time to parse
  it: what a restarting operator pays once);
- one reconcile pass at each size: every trial observed and viewed, then `decide` (random
  search, one slot free), CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubetune.engine import TrialLaunch, decide, default_suggest  # noqa: E402
from kubetune.rpc.limits import MAX_METRIC_NAME, MAX_NAMES_PER_TRIAL  # noqa: E402
from kubetune.rpc.metrics import Point  # noqa: E402
from kubetune.spec import TuningJob  # noqa: E402
from kubetune.stopping import compact_curve, create_stopper  # noqa: E402
from kubetune_operator.builders import build_trial  # noqa: E402
from kubetune_operator.cache import Cache  # noqa: E402
from kubetune_operator.controller import now, trial_view  # noqa: E402
from kubetune_operator.metrics import TrialStatusStore  # noqa: E402
from kubetune_operator.status import build_metrics_status, job_status_patch, observe_trial  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EPOCHS = 100


def job(max_trials: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "big", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": {
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "parameters": [
                {"name": "lr", "type": "float", "min": 1e-5, "max": 1e-1, "scale": "log"},
                {"name": "wd", "type": "float", "min": 1e-6, "max": 1e-2, "scale": "log"},
                {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5},
                {"name": "depth", "type": "int", "min": 1, "max": 8},
                {"name": "width", "type": "int", "min": 16, "max": 1024},
                {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "adamw"]},
            ],
            "algorithm": {"name": "random", "seed": 1},
            "earlyStopping": {"name": "asha"},
            "resource": {"name": "epochs", "min": 1, "max": EPOCHS},
            "maxTrials": max_trials,
            "parallelism": 20,
        },
    }


def finished_trial(body: dict[str, Any], index: int, params: dict[str, Any]) -> dict[str, Any]:
    spec = TuningJob.parse(body).spec
    stopper = create_stopper(spec)
    trial = build_trial(body, TrialLaunch(f"big-{index}", index, params, EPOCHS), "0" * 64)
    trial["metadata"] |= {"uid": f"t-{index}", "resourceVersion": str(index + 10)}
    curve = [(s, 1.0 / s + 0.001 * (index % 97)) for s in range(1, EPOCHS + 1)]
    kept = compact_curve(curve, stopper.anchors(), False)
    latest = {f"metric_{k}": 0.5 for k in range(7)} | {"val_loss": curve[-1][1]}
    trial["status"] = build_metrics_status(kept, spec.objective, latest) | {
        "phase": "Succeeded",
        "startTime": now(),
        "completionTime": now(),
        "paramsSummary": ", ".join(f"{k}={v}" for k, v in params.items()),
    }
    return trial


def measure_size(body: dict[str, Any], n: int) -> dict[str, Any]:
    spec = TuningJob.parse(body).spec
    params = default_suggest(spec, [], n)
    gc.collect()
    tracemalloc.start()
    cache = Cache()
    for i, p in enumerate(params):
        cache.put("trials", finished_trial(body, i, p))
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    trials = cache.of_job("trials", ("ns", "big"))
    listing = json.dumps({"kind": "TrialList", "items": list(trials.values())})
    began = time.process_time()
    json.loads(listing)
    parse = time.process_time() - began
    passes = []
    for _ in range(3):
        began = time.process_time()
        views = [
            trial_view(t, observe_trial(t, None, now()).state)
            for t in sorted(trials.values(), key=lambda t: int(t["spec"]["index"]))
        ]
        decision = decide("big", spec, views, default_suggest)
        status = job_status_patch(spec, views, decision, {}, now())
        passes.append(time.process_time() - began)
    return {
        "trials": n,
        "cache_bytes_per_trial": round(held / n),
        "cache_mib": round(held / 2**20, 1),
        "trial_json_bytes": round(statistics.mean(len(json.dumps(t)) for t in trials.values())),
        "list_mib": round(len(listing) / 2**20, 2),
        "list_parse_s": round(parse, 3),
        "reconcile_pass_s": round(min(passes), 3),
        "job_status_bytes": len(json.dumps({"status": status})),
        "suggestions": len(decision.start),
    }


def largest_trial(body: dict[str, Any]) -> int:
    """A Trial at the status bounds: every metric name at its longest, a long curve compacted."""
    spec = TuningJob.parse(body).spec
    stopper = create_stopper(spec)
    trial = finished_trial(body, 0, default_suggest(spec, [], 1)[0])
    curve = [(s, 1.0 / s) for s in range(1, 100_001)]
    names = {f"{i:04d}".ljust(MAX_METRIC_NAME, "m"): 1.0e-300 for i in range(MAX_NAMES_PER_TRIAL)}
    trial["status"] |= build_metrics_status(
        compact_curve(curve, stopper.anchors(), False), spec.objective, names
    )
    return len(json.dumps(trial))


def running_curves(body: dict[str, Any], running: int) -> int:
    """Bytes the report path keeps for `running` trials that reported EPOCHS steps each."""
    cache = Cache()
    cache.put("tuningjobs", body)
    spec = TuningJob.parse(body).spec
    params = default_suggest(spec, [], running)
    for i, p in enumerate(params):
        trial = finished_trial(body, i, p)
        trial["status"] = {"phase": "Running"}
        cache.put("trials", trial)

    async def patch(ns: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return {}

    metrics = TrialStatusStore(cache, asyncio.run, patch, interval=3600)
    gc.collect()
    tracemalloc.start()
    for i in range(running):
        key = ("ns", f"big-{i}")
        points = [Point(s, {"val_loss": 1.0 / s, "acc": 0.5}, []) for s in range(1, EPOCHS + 1)]
        metrics._write(f"ns/big-{i}", [(p.step, p.metrics) for p in points])
        assert key in metrics.curves
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    metrics.close()
    return held


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,2500,5000,10000")
    parser.add_argument("--running", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    body = job(max(sizes) + 1)
    rows = []
    for n in sizes:
        rows.append(measure_size(body, n))
        print(json.dumps(rows[-1]), flush=True)
    largest = largest_trial(body)
    held = running_curves(body, args.running)
    out = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "sizes": rows,
        "largest_trial_bytes": largest,
        "running_trials": args.running,
        "running_report_state_bytes_per_trial": round(held / args.running),
        "etcd_limit_bytes": 1_572_864,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "sizes"}, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "operator_scale.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
