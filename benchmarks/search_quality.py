"""Search quality: median simple regret after N trials, kubetune vs Optuna and random, one run.

    .venv/bin/python benchmarks/search_quality.py [--seeds 5] [--trials 50] [--problems ...]

Every method sees the same problems and seeds in the same process pool. Results go to stdout as
a markdown table and to benchmarks/results/search_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # two workers on two cores; no BLAS oversubscription

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.search import Observation, create_suggester  # noqa: E402
from kubetune.spec import TuningJobSpec  # noqa: E402
from problems import PROBLEMS, Problem, with_seed  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def run_kubetune(problem: Problem, seed: int, trials: int, algorithm: str, batch: int) -> float:
    spec = TuningJobSpec.model_validate(with_seed(problem.spec, seed, algorithm))
    suggester = create_suggester(spec)
    history: list[Observation] = []
    while len(history) < trials:
        for params in suggester.suggest(history, min(batch, trials - len(history))):
            history.append(Observation(params=params, value=problem.fn(params)))
    return min(o.value for o in history if o.value is not None)


def _optuna_params(trial: Any, spec: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in spec["parameters"]:
        log = p.get("scale") == "log"
        if p["type"] == "float":
            params[p["name"]] = trial.suggest_float(p["name"], p["min"], p["max"], log=log)
        elif p["type"] == "int":
            params[p["name"]] = trial.suggest_int(p["name"], p["min"], p["max"], log=log)
        else:
            params[p["name"]] = trial.suggest_categorical(p["name"], p["values"])
    return params


def run_optuna(problem: Problem, seed: int, trials: int, sampler_name: str) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    sampler = {
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
    }[sampler_name]()
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.optimize(lambda t: problem.fn(_optuna_params(t, problem.spec)), n_trials=trials)
    return float(study.best_value)


def run_skopt(problem: Problem, seed: int, trials: int) -> float:
    from skopt import Optimizer
    from skopt.space import Categorical, Integer, Real

    warnings.filterwarnings("ignore")
    dims = []
    for p in problem.spec["parameters"]:
        prior = "log-uniform" if p.get("scale") == "log" else "uniform"
        if p["type"] == "float":
            dims.append(Real(p["min"], p["max"], prior=prior, name=p["name"]))
        elif p["type"] == "int":
            dims.append(Integer(p["min"], p["max"], prior=prior, name=p["name"]))
        else:
            dims.append(Categorical(p["values"], name=p["name"]))
    opt = Optimizer(dims, base_estimator="GP", random_state=seed)
    names = [p["name"] for p in problem.spec["parameters"]]
    best = float("inf")
    for _ in range(trials):
        x = opt.ask()
        value = problem.fn(dict(zip(names, x, strict=True)))
        best = min(best, value)
        opt.tell(x, value)
    return best


METHODS: dict[str, Callable[[Problem, int, int], float]] = {
    "kubetune bayesian": lambda p, s, n: run_kubetune(p, s, n, "bayesian", 1),
    "kubetune bayesian (count=4)": lambda p, s, n: run_kubetune(p, s, n, "bayesian", 4),
    "optuna GPSampler": lambda p, s, n: run_optuna(p, s, n, "gp"),
    "optuna TPESampler": lambda p, s, n: run_optuna(p, s, n, "tpe"),
    "random (kubetune)": lambda p, s, n: run_kubetune(p, s, n, "random", 1),
    "scikit-optimize GP (plain)": run_skopt,
}


def _job(args: tuple[str, str, int, int]) -> tuple[str, str, int, float, float]:
    method, problem_name, seed, trials = args
    problem = PROBLEMS[problem_name]
    start = time.perf_counter()
    best = METHODS[method](problem, seed, trials)
    return method, problem_name, seed, best - problem.optimum, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    jobs = [
        (m, p, s, args.trials)
        for p in args.problems
        for m in args.methods
        for s in range(args.seeds)
    ]
    regrets: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for method, problem, _seed, regret, took in pool.map(_job, jobs):
            regrets.setdefault((method, problem), []).append(regret)
            seconds.setdefault((method, problem), []).append(took)
            print(f"  {problem:10s} {method:28s} regret {regret:.3g} ({took:.1f}s)", flush=True)
    header = "| method | " + " | ".join(args.problems) + " |"
    print(f"\nMedian simple regret after {args.trials} trials, {args.seeds} seeds")
    print(header + "\n|" + "---|" * (len(args.problems) + 1))
    for m in args.methods:
        cells = [f"{statistics.median(regrets[(m, p)]):.3g}" for p in args.problems]
        print(f"| {m} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "trials": args.trials,
        "seeds": args.seeds,
        "regrets": {f"{m} / {p}": v for (m, p), v in regrets.items()},
        "median_regret": {f"{m} / {p}": statistics.median(v) for (m, p), v in regrets.items()},
        "seconds": {f"{m} / {p}": statistics.median(v) for (m, p), v in seconds.items()},
    }
    (RESULTS / "search_quality.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
