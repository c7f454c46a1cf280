"""Search quality on the suite (benchmarks/suite.py): simple regret after 40 and 80 trials.

    .venv/bin/python benchmarks/search_quality.py [--quick] [--seeds 10] [--trials 40|80]
        [--problems NAME ...] [--methods NAME ...] [--workers 2] [--reuse EARLIER.json ...]

In one run, on the same problems and seeds: kubetune bayesian sequentially (`count=1`) and in
batches of 4 (`count=4`, each batch suggested before any of it is told), Optuna's GPSampler
sequentially and in batches of 4 (its own batch mode: four `ask`s, then four `tell`s), Optuna's
TPESampler, and random search. Simple regret after t trials is the noise-free value of the best
observed point so far minus the optimum. Output: a markdown summary (median and IQR per function,
goal checks) on stdout, every run's regret curve in benchmarks/results/search_quality.json, and
one regret-vs-trials PNG per function in benchmarks/results/search_quality/ (named after --out).

The default is 40 trials (about 20 minutes for the whole suite on 2 cores); `--trials 80` reports
both budgets but costs several times more, most of it in Optuna's GPSampler. `--quick` runs a
6-function subset with 5 seeds. `--reuse` takes the curves of methods that did not change
from earlier runs (each method is deterministic per seed), so a change to ours reruns only ours.
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

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.search import Observation, create_suggester  # noqa: E402
from kubetune.spec import TuningJobSpec  # noqa: E402
from suite import QUICK, SUITE, Instance, Params, Problem  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BUDGETS = (40, 80)
OURS, OURS4 = "kubetune bayesian", "kubetune bayesian (count=4)"
GP, GP4, TPE, RANDOM = "optuna GP", "optuna GP (batch 4)", "optuna TPE", "random (kubetune)"
Run = list[tuple[Params, float]]  # (params, observed value), in the order evaluated


def run_kubetune(
    problem: Problem, f: Instance, seed: int, trials: int, algo: str, batch: int
) -> Run:
    suggester = create_suggester(TuningJobSpec.model_validate(problem.spec(seed, algo)))
    history: list[Observation] = []
    while len(history) < trials:
        for params in suggester.suggest(history, min(batch, trials - len(history))):
            history.append(Observation(params=params, value=f.observe(params)))
    # a NaN objective (a diverged trial) is a failed trial: it counts, and is never the best
    return [(o.params, float("nan") if o.value is None else float(o.value)) for o in history]


def _optuna_params(trial: Any, parameters: list[dict[str, Any]]) -> Params:
    params: Params = {}
    for p in parameters:
        log = p.get("scale") == "log"
        if p["type"] == "float":
            params[p["name"]] = trial.suggest_float(p["name"], p["min"], p["max"], log=log)
        elif p["type"] == "int":
            params[p["name"]] = trial.suggest_int(p["name"], p["min"], p["max"], log=log)
        else:
            params[p["name"]] = trial.suggest_categorical(p["name"], p["values"])
    return params


def run_optuna(
    problem: Problem, f: Instance, seed: int, trials: int, sampler: str, batch: int
) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    make = {"gp": optuna.samplers.GPSampler, "tpe": optuna.samplers.TPESampler}[sampler]
    study = optuna.create_study(sampler=make(seed=seed), direction="minimize")
    run: Run = []
    while len(run) < trials:
        asked = [study.ask() for _ in range(min(batch, trials - len(run)))]
        configs = [_optuna_params(t, problem.parameters) for t in asked]
        for trial, params in zip(asked, configs, strict=True):
            value = f.observe(params)
            study.tell(trial, value)
            run.append((params, value))
    return run


METHODS: dict[str, Callable[[Problem, Instance, int, int], Run]] = {
    OURS: lambda p, f, s, n: run_kubetune(p, f, s, n, "bayesian", 1),
    OURS4: lambda p, f, s, n: run_kubetune(p, f, s, n, "bayesian", 4),
    GP: lambda p, f, s, n: run_optuna(p, f, s, n, "gp", 1),
    GP4: lambda p, f, s, n: run_optuna(p, f, s, n, "gp", 4),
    TPE: lambda p, f, s, n: run_optuna(p, f, s, n, "tpe", 1),
    RANDOM: lambda p, f, s, n: run_kubetune(p, f, s, n, "random", 1),
}


def regret_curve(run: Run, instance: Instance) -> list[float]:
    """After each trial: the true value of the best point observed so far, minus the optimum."""
    curve, best, pick = [], float("inf"), float("inf")
    for params, observed in run:
        if observed < best:
            best, pick = observed, instance.truth(params) - instance.optimum
        curve.append(max(0.0, pick))
    return curve


def _job(args: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    method, name, seed, trials = args
    problem = SUITE[name]
    instance = problem.make(seed)
    started = time.perf_counter()
    run = METHODS[method](problem, instance, seed, trials)
    took = time.perf_counter() - started
    return method, name, seed, regret_curve(run, instance), took


def reused(
    paths: list[str], methods: list[str], problems: list[str], seeds: int, trials: int
) -> tuple[dict[tuple[str, str], list[list[float]]], dict[str, float]]:
    """Curves from earlier runs for each (method, function) one of them holds in full: all
    `seeds` seeds (seed k is its k-th curve), each at least `trials` long, cut to `trials`; the
    first file holding a pair wins. Also those runs' median seconds per run."""
    found: dict[tuple[str, str], list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for path in paths:
        earlier = json.loads(Path(path).read_text())
        for m in methods:
            for p in problems:
                runs = earlier["regret_curves"].get(f"{m} / {p}", [])
                full = len(runs) >= seeds and all(len(c) >= trials for c in runs[:seeds])
                if (m, p) not in found and full:
                    found[(m, p)] = [c[:trials] for c in runs[:seeds]]
                    seconds[f"{m} / {p}"] = earlier["median_seconds_per_run"][f"{m} / {p}"]
    print(f"reused: {len(found)} of {len(methods) * len(problems)} method/function pairs")
    return found, seconds


def iqr(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(q2), float(q3)


def summarize(
    curves: dict[tuple[str, str], list[list[float]]],
    problems: list[str],
    methods: list[str],
    budget: int,
) -> list[str]:
    lines = [
        f"Median simple regret [IQR] after {budget} trials",
        "",
        "| function | group | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for p in problems:
        cells = []
        for m in methods:
            q1, q2, q3 = iqr([c[budget - 1] for c in curves[(m, p)]])
            cells.append(f"{q2:.3g} [{q1:.2g}, {q3:.2g}]")
        lines.append(f"| {p} | {SUITE[p].group} | " + " | ".join(cells) + " |")
    return lines


def goals(
    curves: dict[tuple[str, str], list[list[float]]], problems: list[str], budget: int = 40
) -> list[str]:
    def med(m: str, p: str) -> float:
        return statistics.median(c[budget - 1] for c in curves[(m, p)])

    lines = [f"Goals at {budget} trials (ties count as met):", ""]
    checks = [  # (label, methods it needs, check, share of functions to meet it)
        ("sequential <= Optuna GP", (OURS, GP), lambda p: med(OURS, p) <= med(GP, p), 0.8),
        ("sequential <= TPE", (OURS, TPE), lambda p: med(OURS, p) <= med(TPE, p), 1.0),
        (
            "count=4 within 1.25x of sequential",
            (OURS, OURS4),
            lambda p: med(OURS4, p) <= 1.25 * med(OURS, p) or med(OURS4, p) < 1e-9,
            0.8,
        ),
        ("count=4 <= Optuna GP batch 4", (OURS4, GP4), lambda p: med(OURS4, p) <= med(GP4, p), 1.0),
    ]
    for label, needs, check, share in checks:
        if any((m, p) not in curves for m in needs for p in problems):
            continue  # a method it compares was not run
        missed = [p for p in problems if not check(p)]
        met = len(problems) - len(missed)
        verdict = "met" if met >= share * len(problems) else "NOT met"
        lines.append(
            f"- {label}: {met}/{len(problems)} (goal {share:.0%}): {verdict}; missed: {', '.join(missed) or 'none'}"
        )
    return lines


def plot(
    curves: dict[tuple[str, str], list[list[float]]], problem: str, methods: list[str], out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        data = np.array(curves[(m, problem)])
        x = np.arange(1, data.shape[1] + 1)
        q1, q2, q3 = np.percentile(data, [25, 50, 75], axis=0)
        floor = 1e-12
        ax.plot(x, np.maximum(q2, floor), label=m)
        ax.fill_between(x, np.maximum(q1, floor), np.maximum(q3, floor), alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("simple regret (median, IQR)")
    ax.set_title(f"{problem} ({SUITE[problem].group})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="6 functions, 5 seeds")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--trials", type=int, default=min(BUDGETS), help="80: both budgets")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--problems", nargs="*")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--out", default=str(RESULTS / "search_quality.json"))
    parser.add_argument(
        "--reuse",
        nargs="*",
        default=[],
        help="earlier runs' JSON: methods in --methods that one of them holds for every function and "
        "seed asked are taken from them, not run again (every method is deterministic per seed)",
    )
    args = parser.parse_args()
    problems = args.problems or (QUICK if args.quick else list(SUITE))
    seeds = args.seeds or (5 if args.quick else 10)
    budgets = [b for b in BUDGETS if b <= args.trials] or [args.trials]
    slow_first = {GP: 0, GP4: 1, OURS: 2, OURS4: 3}
    curves, reused_seconds = reused(args.reuse, args.methods, problems, seeds, args.trials)
    jobs = sorted(
        (
            (m, p, s, args.trials)
            for p in problems
            for m in args.methods
            for s in range(seeds)
            if (m, p) not in curves
        ),
        key=lambda j: slow_first.get(j[0], 9),
    )
    seconds: dict[tuple[str, str], list[float]] = {}
    curves_reused = set(curves)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for done, (method, problem, _seed, curve, took) in enumerate(pool.map(_job, jobs), 1):
            curves.setdefault((method, problem), []).append(curve)
            seconds.setdefault((method, problem), []).append(took)
            print(
                f"[{done}/{len(jobs)}] {problem:28s} {method:28s} regret {curve[-1]:.3g} ({took:.1f}s)",
                flush=True,
            )
    wall = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "trials": args.trials,
        "seeds": seeds,
        "wall_s": round(wall, 1),
        "reused": {"from": args.reuse, "runs": sorted(f"{m} / {p}" for m, p in curves_reused)},
        "median_seconds_per_run": {
            **reused_seconds,
            **{f"{m} / {p}": round(statistics.median(v), 2) for (m, p), v in seconds.items()},
        },
        "regret_curves": {
            f"{m} / {p}": [[float(f"{v:.4g}") for v in c] for c in cs]
            for (m, p), cs in curves.items()
        },
    }
    out.write_text(json.dumps(record) + "\n")  # the raw curves first, whatever comes next
    report: list[str] = []
    for budget in budgets:
        report += ["", *summarize(curves, problems, args.methods, budget)]
    for budget in budgets:
        report += ["", *goals(curves, problems, budget)]
    report += [
        "",
        f"wall {wall / 60:.1f} min, {args.workers} workers, {seeds} seeds, {len(problems)} functions",
    ]
    print("\n".join(report))
    out.write_text(json.dumps({**record, "summary": report}) + "\n")
    plots = out.parent / out.stem  # one PNG per function
    plots.mkdir(exist_ok=True)
    for p in problems:
        plot(curves, p, args.methods, plots / f"{p}.png")


if __name__ == "__main__":
    main()
