"""Constrained search: the share of feasible trials and the best feasible value, against Optuna
5's constrained GPSampler (and TPESampler), in one run.

    .venv/bin/python benchmarks/constrained.py [--seeds 10] [--trials 40] [--workers 2]

Problems (minimize, constraints c <= 0): Branin with a disc, (x1-2.5)^2 + (x2-7.5)^2 <= 50
(optimum 0.398 at (pi, 2.275), which is inside); Gramacy et al.'s toy, x1 + x2 with two
constraints on [0, 1]^2 (optimum about 0.5998). Output: a markdown table on stdout and
benchmarks/results/constrained.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from kubetune.search import Observation, create_suggester  # noqa: E402
from kubetune.spec import TuningJobSpec  # noqa: E402

RESULTS = Path(__file__).parent / "results"
Outcome = tuple[float, tuple[float, ...]]  # objective, constraint values (<= 0: met)


def branin_disc(x1: float, x2: float) -> Outcome:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    f = (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
    return f, ((x1 - 2.5) ** 2 + (x2 - 7.5) ** 2 - 50,)


def gramacy(x1: float, x2: float) -> Outcome:
    c1 = 1.5 - x1 - 2 * x2 - 0.5 * math.sin(2 * math.pi * (x1**2 - 2 * x2))
    c2 = x1**2 + x2**2 - 1.5
    return x1 + x2, (c1, c2)


PROBLEMS: dict[str, tuple[Callable[[float, float], Outcome], tuple[tuple[float, float], ...]]] = {
    "branin_disc": (branin_disc, ((-5.0, 10.0), (0.0, 15.0))),
    "gramacy": (gramacy, ((0.0, 1.0), (0.0, 1.0))),
}
METHODS = ("kubetune", "optuna GP", "optuna TPE", "random")


def run_kubetune(name: str, seed: int, trials: int, algorithm: str) -> list[Outcome]:
    f, bounds = PROBLEMS[name]
    count = len(f(*(b[0] for b in bounds))[1])
    spec = TuningJobSpec.model_validate(
        {
            "objective": {
                "metric": "f",
                "direction": "minimize",
                "additionalMetrics": [f"c{i}" for i in range(count)],
            },
            "constraints": [{"metric": f"c{i}", "max": 0.0} for i in range(count)],
            "parameters": [
                {"name": f"x{i}", "type": "float", "min": lo, "max": hi}
                for i, (lo, hi) in enumerate(bounds)
            ],
            "algorithm": {"name": algorithm, "seed": seed},
        }
    )
    suggester = create_suggester(spec)
    history: list[Observation] = []
    out = []
    for _ in range(trials):
        p = suggester.suggest(history, 1)[0]
        value, cs = f(float(p["x0"]), float(p["x1"]))
        metrics = {"f": value, **{f"c{i}": c for i, c in enumerate(cs)}}
        history.append(Observation(p, value, "succeeded", metrics))
        out.append((value, cs))
    return out


def run_optuna(name: str, seed: int, trials: int, method: str) -> list[Outcome]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    f, bounds = PROBLEMS[name]

    def constraints(trial: Any) -> Any:
        return trial.user_attrs["c"]

    sampler = (
        optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
        if method == "optuna GP"
        else optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    out = []
    for _ in range(trials):
        trial = study.ask()
        x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        value, cs = f(*x)
        trial.set_user_attr("c", list(cs))
        study.tell(trial, value)
        out.append((value, cs))
    return out


def one(args: tuple[str, str, int, int]) -> dict[str, Any]:
    name, method, seed, trials = args
    if method in ("kubetune", "random"):
        runs = run_kubetune(name, seed, trials, "bayesian" if method == "kubetune" else "random")
    else:
        runs = run_optuna(name, seed, trials, method)
    feasible = [v for v, cs in runs if all(c <= 0 for c in cs)]
    return {
        "problem": name,
        "method": method,
        "seed": seed,
        "feasible_share": len(feasible) / len(runs),
        "best_feasible": min(feasible) if feasible else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    jobs = [(p, m, s, args.trials) for p in PROBLEMS for m in METHODS for s in range(args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(one, jobs))
    print("| problem | method | feasible trials (median share) | best feasible (median) |")
    print("|---|---|---|---|")
    for name in PROBLEMS:
        for method in METHODS:
            mine = [r for r in rows if r["problem"] == name and r["method"] == method]
            share = statistics.median(r["feasible_share"] for r in mine)
            best = [r["best_feasible"] for r in mine if r["best_feasible"] is not None]
            shown = f"{statistics.median(best):.4g}" if best else "none"
            print(
                f"| {name} | {method} | {share:.0%} | {shown} ({len(best)} of {len(mine)} found one) |"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "constrained.json").write_text(
        json.dumps({"args": vars(args), "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
