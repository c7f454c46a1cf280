"""Warm start: how fast a job started from an earlier one gets back to the earlier best, and
whether warm start hurts when the optimum has moved.

    .venv/bin/python benchmarks/warm_start.py [--seeds 10] [--trials 30] [--workers 2]

For each problem (benchmarks/problems.py: branin, hartmann6, mixed) and seed: an earlier
Bayesian job of `--trials` trials; its trials become warm-start points (`kubetune.warm.fitting`,
the path `warmStart.fromJobs` takes); a new job with another seed starts from them, as the
decision core passes them (before its own trials). Printed: the trial at which the new job first
matches the earlier job's best (median over seeds; goal: at most half of `--trials`), and on a
shifted function (the optimum moved) the regret after `--trials` trials with and without the
earlier points, and a paired one-sided Wilcoxon test of "warm is worse" over the seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.search import Observation, create_suggester  # noqa: E402
from kubetune.spec import TuningJobSpec, WarmPoint  # noqa: E402
from kubetune.warm import fitting  # noqa: E402
from problems import PROBLEMS, Problem, with_seed  # noqa: E402
from scipy.stats import wilcoxon  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SHIFT = 0.15  # of each numeric range


def shifted(problem: Problem, params: dict[str, Any]) -> float:
    """The function with its optimum moved: numeric inputs shifted by SHIFT of their range."""
    moved = dict(params)
    for p in problem.spec["parameters"]:
        if p["type"] == "categorical":
            continue
        low, high = p["min"], p["max"]
        value = float(params[p["name"]]) - SHIFT * (high - low)
        if p.get("scale") == "log":
            value = float(params[p["name"]]) * (high / low) ** -SHIFT
        value = min(max(value, low), high)
        moved[p["name"]] = round(value) if p["type"] == "int" else value
    return problem.fn(moved)


def run(
    spec: TuningJobSpec, fn: Any, trials: int, prior: list[Observation]
) -> list[tuple[dict[str, Any], float]]:
    suggester = create_suggester(spec)
    history = list(prior)
    seen: list[tuple[dict[str, Any], float]] = []
    while len(seen) < trials:
        params = suggester.suggest(history, 1)[0]
        value = fn(params)
        history.append(Observation(params, value, "succeeded", {"loss": value}))
        seen.append((params, value))
    return seen


def one(args: tuple[str, int, int]) -> dict[str, Any]:
    name, seed, trials = args
    problem = PROBLEMS[name]
    spec = TuningJobSpec.model_validate({**with_seed(problem.spec, seed), "maxTrials": trials})
    later = TuningJobSpec.model_validate(
        {**with_seed(problem.spec, seed + 1000), "maxTrials": trials}
    )
    earlier = run(spec, problem.fn, trials, [])
    best = min(v for _, v in earlier)
    points = [WarmPoint(params=p, metrics={"loss": v}, source="earlier") for p, v in earlier]
    prior = fitting(later, points).observations
    warm = run(later, problem.fn, trials, prior)
    reached = next((i + 1 for i, (_, v) in enumerate(warm) if v <= best), None)

    def moved(p: dict[str, Any]) -> float:
        return shifted(problem, p)

    warm_shifted = min(v for _, v in run(later, moved, trials, prior))
    cold_shifted = min(v for _, v in run(later, moved, trials, []))
    # The best value seen in a long cold run or in either run stands in for the moved optimum.
    long_run = min(v for _, v in run(spec, moved, 3 * trials, []))
    shifted_optimum = min(long_run, warm_shifted, cold_shifted)
    return {
        "problem": name,
        "seed": seed,
        "earlier_best": best,
        "warm_reached_at": reached,
        "warm_shifted_regret": warm_shifted - shifted_optimum,
        "cold_shifted_regret": cold_shifted - shifted_optimum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--out", default="warm_start")
    args = parser.parse_args()
    jobs = [(p, s, args.trials) for p in args.problems for s in range(args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(one, jobs))
    print(
        "| problem | warm job reaches the earlier best at trial (median) | not reached | "
        "shifted: regret warm / cold (median) | warm worse than cold (seeds) | "
        "p (warm worse, paired Wilcoxon) |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.problems:
        mine = [r for r in rows if r["problem"] == name]
        reached = [r["warm_reached_at"] or args.trials + 1 for r in mine]
        missed = sum(1 for r in mine if r["warm_reached_at"] is None)
        warm = statistics.median(r["warm_shifted_regret"] for r in mine)
        cold = statistics.median(r["cold_shifted_regret"] for r in mine)
        worse = sum(1 for r in mine if r["warm_shifted_regret"] > r["cold_shifted_regret"])
        p = wilcoxon(
            [r["warm_shifted_regret"] for r in mine],
            [r["cold_shifted_regret"] for r in mine],
            alternative="greater",
        ).pvalue
        print(
            f"| {name} | {statistics.median(reached):g} of {args.trials} | {missed} | "
            f"{warm:.4g} / {cold:.4g} | {worse} of {len(mine)} | {p:.2f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"args": vars(args), "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
