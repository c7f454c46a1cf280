"""Cold-start suggestion latency: `suggest(history, count=4)` rebuilt from N completed trials.

    .venv/bin/python benchmarks/suggest_latency.py [--sizes 50 100 200] [--reps 100] [--busy 1]

`--busy N` runs N CPU-bound processes (a busy loop each) during the measurement, as a trial or
another service would on the same node.

The peer, in the same run and on the same histories: plain scikit-optimize rebuilt the same way
(`Optimizer(base_estimator="GP")`, `tell(all)`, `ask(n_points=4)`), which is the per-request path
of a stateless suggestion service built directly on it. Results: stdout and
benchmarks/results/suggest_latency.json.
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
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.search import Observation, create_suggester
from kubetune.spec import TuningJobSpec
from problems import PROBLEMS, hartmann6, with_seed

RESULTS = Path(__file__).parent / "results"


def history(n: int, seed: int) -> list[Observation]:
    rng = np.random.default_rng(seed)
    out = []
    for row in rng.random((n, 6)):
        params = {f"x{i}": float(v) for i, v in enumerate(row, 1)}
        out.append(Observation(params=params, value=hartmann6(params)))
    return out


def time_kubetune(hist: list[Observation], seed: int) -> float:
    start = time.perf_counter()
    spec = TuningJobSpec.model_validate(with_seed(PROBLEMS["hartmann6"].spec, seed))
    batch = create_suggester(spec).suggest(hist, 4)
    took = time.perf_counter() - start
    assert len(batch) == 4
    return took


def time_skopt(hist: list[Observation], seed: int) -> float:
    from skopt import Optimizer
    from skopt.space import Real

    start = time.perf_counter()
    opt = Optimizer([Real(0.0, 1.0) for _ in range(6)], base_estimator="GP", random_state=seed)
    opt.tell([[o.params[f"x{i}"] for i in range(1, 7)] for o in hist], [o.value for o in hist])
    batch = opt.ask(n_points=4)
    took = time.perf_counter() - start
    assert len(batch) == 4
    return took


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="*", type=int, default=[50, 100, 200])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--baseline-reps", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes alongside")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure(args, rows)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    RESULTS.mkdir(exist_ok=True)
    out = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "busy_processes": args.busy,
        "rows": rows,
    }
    (RESULTS / "suggest_latency.json").write_text(json.dumps(out, indent=2))


def measure(args: argparse.Namespace, rows: list[dict[str, float]]) -> None:
    for n in args.sizes:
        ours = [time_kubetune(history(n, r), r) for r in range(args.reps)]
        peer = [time_skopt(history(n, r), r) for r in range(args.baseline_reps)]
        row = {
            "trials": n,
            "kubetune_p50": statistics.median(ours),
            "kubetune_p95": percentile(ours, 95),
            "kubetune_p99": percentile(ours, 99),
            "skopt_p50": statistics.median(peer),
            "speedup_p50": statistics.median(peer) / statistics.median(ours),
        }
        rows.append(row)
        print(
            f"n={n:4d}  kubetune p50 {row['kubetune_p50']:.3f}s p95 {row['kubetune_p95']:.3f}s"
            f" p99 {row['kubetune_p99']:.3f}s"
            f"  | plain skopt p50 {row['skopt_p50']:.2f}s  | speed-up x{row['speedup_p50']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
