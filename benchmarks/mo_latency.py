"""Suggestion latency with several objectives: `suggest(history, count=4)` rebuilt from N
finished trials of DTLZ2 (3 objectives, d=6), beside a busy process.

    .venv/bin/python benchmarks/mo_latency.py [--trials 200] [--reps 20] [--busy 1]

The peer, in the same run on the same histories: Optuna 5's GPSampler on a study holding the same
trials, four `ask`s (its per-request path for a batch of four). Goal (issue 32): p50 <= 0.5 s and
p99 <= 2 s. Results: stdout and benchmarks/results/mo_latency.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.search import Observation, create_suggester
from kubetune.spec import TuningJobSpec
from multi_objective import dtlz2

RESULTS = Path(__file__).parent / "results"
D = 6


def spec(seed: int) -> TuningJobSpec:
    return TuningJobSpec.model_validate(
        {
            "objectives": [{"metric": f"f{j}", "direction": "minimize"} for j in range(3)],
            "parameters": [
                {"name": f"x{i}", "type": "float", "min": 0.0, "max": 1.0} for i in range(D)
            ],
            "algorithm": {"name": "bayesian", "seed": seed},
            "maxTrials": 1000,
            "parallelism": 4,
        }
    )


def history(n: int, seed: int) -> list[tuple[dict[str, float], tuple[float, ...]]]:
    rng = np.random.default_rng(seed)
    return [
        ({f"x{i}": float(v) for i, v in enumerate(row)}, dtlz2(row)) for row in rng.random((n, D))
    ]


def time_kubetune(rows: list[tuple[dict[str, float], tuple[float, ...]]], seed: int) -> float:
    observed = [
        Observation(p, y[0], "succeeded", {f"f{j}": v for j, v in enumerate(y)}) for p, y in rows
    ]
    began = time.perf_counter()
    picks = create_suggester(spec(seed)).suggest(observed, 4)
    elapsed = time.perf_counter() - began
    assert len(picks) == 4
    return elapsed


def time_optuna(rows: list[tuple[dict[str, float], tuple[float, ...]]], seed: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    distributions: dict[str, Any] = {
        f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(D)
    }
    study = optuna.create_study(
        directions=["minimize"] * 3, sampler=optuna.samplers.GPSampler(seed=seed)
    )
    study.add_trials(
        [
            optuna.trial.create_trial(params=p, distributions=distributions, values=list(y))
            for p, y in rows
        ]
    )
    began = time.perf_counter()
    for _ in range(4):
        trial = study.ask()
        for i in range(D):
            trial.suggest_float(f"x{i}", 0.0, 1.0)
    return time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--peer-reps", type=int, default=5)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes alongside")
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        ours = [time_kubetune(history(args.trials, r), r) for r in range(args.reps)]
        peer = [time_optuna(history(args.trials, r), r) for r in range(args.peer_reps)]
    finally:
        for p in busy:
            p.kill()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "trials": args.trials,
        "busy": args.busy,
        "kubetune_p50_s": round(statistics.median(ours), 3),
        "kubetune_p99_s": round(percentile(ours, 0.99), 3),
        "optuna_gp_p50_s": round(statistics.median(peer), 3),
        "ratio_optuna_over_kubetune_p50": round(
            statistics.median(peer) / statistics.median(ours), 2
        ),
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mo_latency.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
