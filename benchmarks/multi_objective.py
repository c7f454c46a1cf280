"""Multi-objective search quality: hypervolume after 40 and 80 trials against Optuna 5.

    .venv/bin/python benchmarks/multi_objective.py [--seeds 10] [--trials 40 80]
        [--problems NAME ...] [--methods NAME ...] [--workers 2]

In one run, on the same problems and seeds: kubetune bayesian (expected hypervolume
improvement, one GP per objective), Optuna's TPESampler (its default), NSGAIISampler and
GPSampler, and random search. Each problem has a fixed reference point; the hypervolume of the
feasible trials evaluated so far is measured against it. Problems: ZDT1, ZDT2, ZDT3 (d=6),
DTLZ2 with 3 objectives (d=6) and with 4 (`dtlz2_4`, d=7), Branin-Currin (d=2), Kursawe (d=3),
and `trainer`: the shipped trainer in-process on digits (validation accuracy against parameter
count, 2 epochs). Output: a markdown table of median hypervolumes on stdout, every run in
benchmarks/results/<--out>.json. The goal (issue 32): our median at or above the best Optuna
sampler's on at least 80% of the problems.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.pareto import hypervolume, to_losses  # noqa: E402
from kubetune.search import Observation, create_suggester  # noqa: E402
from kubetune.spec import TuningJobSpec  # noqa: E402

RESULTS = Path(__file__).parent / "results"
Params = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    name: str
    bounds: list[tuple[float, float]]
    minimize: tuple[bool, ...]
    reference: tuple[float, ...]  # raw values
    f: Callable[[np.ndarray], tuple[float, ...]]


def zdt(kind: int) -> Callable[[np.ndarray], tuple[float, ...]]:
    def f(x: np.ndarray) -> tuple[float, ...]:
        f1 = float(x[0])
        g = 1 + 9 * float(np.mean(x[1:]))
        if kind == 1:
            h = 1 - math.sqrt(f1 / g)
        elif kind == 2:
            h = 1 - (f1 / g) ** 2
        else:
            h = 1 - math.sqrt(f1 / g) - (f1 / g) * math.sin(10 * math.pi * f1)
        return f1, g * h

    return f


def dtlz2(m: int) -> Callable[[np.ndarray], tuple[float, ...]]:
    """DTLZ2 with m objectives: the first m-1 inputs place a point on the sphere, the rest
    (their distance from 0.5) push it outward."""

    def f(x: np.ndarray) -> tuple[float, ...]:
        g = float(np.sum((x[m - 1 :] - 0.5) ** 2))
        angles = x[: m - 1] * math.pi / 2
        values = []
        for i in range(m):
            value = 1 + g
            for a in angles[: m - 1 - i]:
                value *= math.cos(a)
            if i > 0:
                value *= math.sin(angles[m - 1 - i])
            values.append(value)
        return tuple(values)

    return f


def branin_currin(x: np.ndarray) -> tuple[float, ...]:
    u, v = 15 * x[0] - 5, 15 * x[1]
    branin = (v - 5.1 / (4 * math.pi**2) * u**2 + 5 / math.pi * u - 6) ** 2
    branin += 10 * (1 - 1 / (8 * math.pi)) * math.cos(u) + 10
    x1, x2 = float(x[0]), max(float(x[1]), 1e-9)
    currin = (1 - math.exp(-1 / (2 * x2))) * (2300 * x1**3 + 1900 * x1**2 + 2092 * x1 + 60)
    currin /= 100 * x1**3 + 500 * x1**2 + 4 * x1 + 20
    return float(branin), currin


def kursawe(x: np.ndarray) -> tuple[float, ...]:
    f1 = sum(-10 * math.exp(-0.2 * math.hypot(x[i], x[i + 1])) for i in range(2))
    f2 = sum(abs(v) ** 0.8 + 5 * math.sin(v**3) for v in x)
    return f1, float(f2)


def trainer(x: np.ndarray) -> tuple[float, ...]:
    """The shipped trainer in-process: units (log 8..256) and lr (log 1e-3..0.3)."""
    from trainer_objective import accuracy_and_size

    return accuracy_and_size(round(float(x[0])), float(x[1]))


UNIT = [(0.0, 1.0)]
PROBLEMS = {
    p.name: p
    for p in (
        Problem("zdt1", UNIT * 6, (True, True), (1.1, 11.0), zdt(1)),
        Problem("zdt2", UNIT * 6, (True, True), (1.1, 11.0), zdt(2)),
        Problem("zdt3", UNIT * 6, (True, True), (1.1, 11.0), zdt(3)),
        Problem("dtlz2", UNIT * 6, (True,) * 3, (2.2,) * 3, dtlz2(3)),
        Problem("dtlz2_4", UNIT * 7, (True,) * 4, (2.2,) * 4, dtlz2(4)),
        Problem("branin_currin", UNIT * 2, (True, True), (310.0, 14.0), branin_currin),
        Problem("kursawe", [(-5.0, 5.0)] * 3, (True, True), (-4.0, 26.0), kursawe),
        Problem("trainer", [(8, 256), (1e-3, 0.3)], (False, True), (0.5, 20000.0), trainer),
    )
}
METHODS = ("kubetune", "optuna TPE", "optuna NSGA-II", "optuna GP", "random")


def _names(problem: Problem) -> list[str]:
    return [f"x{i}" for i in range(len(problem.bounds))]


def _spec(problem: Problem, seed: int, algorithm: str) -> TuningJobSpec:
    parameters = []
    for name, (low, high) in zip(_names(problem), problem.bounds, strict=True):
        log = problem.name == "trainer"
        kind = "int" if problem.name == "trainer" and name == "x0" else "float"
        parameters.append(
            {
                "name": name,
                "type": kind,
                "min": low,
                "max": high,
                "scale": "log" if log else "linear",
            }
        )
    objectives = [
        {"metric": f"f{j}", "direction": "minimize" if m else "maximize"}
        for j, m in enumerate(problem.minimize)
    ]
    return TuningJobSpec.model_validate(
        {
            "objectives": objectives,
            "parameters": parameters,
            "algorithm": {"name": algorithm, "seed": seed},
        }
    )


def run_kubetune(
    problem: Problem, seed: int, trials: int, algorithm: str
) -> list[tuple[float, ...]]:
    suggester = create_suggester(_spec(problem, seed, algorithm))
    history: list[Observation] = []
    values = []
    while len(history) < trials:
        params = suggester.suggest(history, 1)[0]
        y = problem.f(np.array([float(params[n]) for n in _names(problem)]))
        metrics = {f"f{j}": v for j, v in enumerate(y)}
        history.append(Observation(params, y[0], "succeeded", metrics))
        values.append(y)
    return values


def run_optuna(problem: Problem, seed: int, trials: int, method: str) -> list[tuple[float, ...]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    samplers = {
        "optuna TPE": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna NSGA-II": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "optuna GP": lambda: optuna.samplers.GPSampler(seed=seed),
    }
    directions = ["minimize" if m else "maximize" for m in problem.minimize]
    study = optuna.create_study(directions=directions, sampler=samplers[method]())
    values = []
    for _ in range(trials):
        trial = study.ask()
        x = []
        for name, (low, high) in zip(_names(problem), problem.bounds, strict=True):
            if problem.name == "trainer" and name == "x0":
                x.append(trial.suggest_int(name, int(low), int(high), log=True))
            else:
                x.append(trial.suggest_float(name, low, high, log=problem.name == "trainer"))
        y = problem.f(np.array(x, dtype=float))
        study.tell(trial, list(y))
        values.append(y)
    return values


def _job(args: tuple[str, str, int, int]) -> tuple[str, str, int, list[list[float]], float]:
    name, method, seed, trials = args
    problem = PROBLEMS[name]
    began = time.process_time()
    if method == "kubetune":
        values = run_kubetune(problem, seed, trials, "bayesian")
    elif method == "random":
        values = run_kubetune(problem, seed, trials, "random")
    else:
        values = run_optuna(problem, seed, trials, method)
    return name, method, seed, [list(v) for v in values], time.process_time() - began


def volume(problem: Problem, values: list[list[float]]) -> float:
    losses = to_losses(np.array(values), problem.minimize)
    reference = to_losses(np.array([problem.reference]), problem.minimize)[0]
    return hypervolume(losses, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, nargs="+", default=[40, 80])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="multi_objective")
    args = parser.parse_args()
    longest = max(args.trials)
    jobs = [
        (p, m, s, longest) for p in args.problems for m in args.methods for s in range(args.seeds)
    ]
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        for name, method, seed, values, cpu in pool.map(_job, jobs):
            runs.append(
                {"problem": name, "method": method, "seed": seed, "values": values, "cpu_s": cpu}
            )
            print(f"{name} {method} seed {seed}: {cpu:.1f} s", file=sys.stderr, flush=True)
    table = [
        "| problem | trials | " + " | ".join(args.methods) + " | ours >= best Optuna |",
        "|---" * (len(args.methods) + 3) + "|",
    ]
    met: dict[int, int] = {t: 0 for t in args.trials}
    for name in args.problems:
        problem = PROBLEMS[name]
        for budget in args.trials:
            medians = {}
            for method in args.methods:
                hv = [
                    volume(problem, r["values"][:budget])
                    for r in runs
                    if r["problem"] == name and r["method"] == method
                ]
                medians[method] = statistics.median(hv)
            optuna_best = max(
                (v for m, v in medians.items() if m.startswith("optuna")), default=-math.inf
            )
            ok = medians.get("kubetune", -math.inf) >= optuna_best
            met[budget] += ok
            cells = " | ".join(f"{medians[m]:.4g}" for m in args.methods)
            table.append(f"| {name} | {budget} | {cells} | {'yes' if ok else 'no'} |")
    print("\n".join(table))
    for budget in args.trials:
        print(
            f"\n{budget} trials: ours at or above the best Optuna sampler on {met[budget]} of {len(args.problems)} problems"
        )
    cpu = {m: statistics.mean(r["cpu_s"] for r in runs if r["method"] == m) for m in args.methods}
    print("\nCPU seconds per run (mean): " + ", ".join(f"{m} {v:.1f}" for m, v in cpu.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "seconds": round(time.monotonic() - started),
                "args": vars(args),
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
