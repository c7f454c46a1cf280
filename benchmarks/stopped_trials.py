"""How a trial that ASHA stopped should enter the GP: measured on the real-trainer problem.

    .venv/bin/python benchmarks/stopped_trials.py [--seeds 20] [--rules asha median]
        [--variants engine final pending worst] [--epochs-budget 480] [--out PATH]

The shipped trainer on digits, answered from its lookup table (benchmarks/tables.py, 12 epochs of
learning curve per configuration). Sequential Bayesian search with ASHA (reduction factor 3,
rungs at epochs 1, 3 and 9) or the median rule, each run given the same budget of epochs. Variants of what the
suggester is told about a stopped trial:

- `engine`: what the engine tells it: state `stopped` with its best value so far. The Bayesian
  search keeps such a trial pending (not fitted on) once two trials have run to the end;
- `final`: its best value so far, as if final (state `succeeded`: what the engine did before);
- `pending`: nothing learned, as if still running;
- `worst`: the worse of its partial value and the worst final value seen so far (pessimistic).

Regret: the best final validation loss among trials that ran all 12 epochs, minus the table's
best. A seed gives every variant the same initial design, so variants are compared seed by seed
(paired Wilcoxon signed-rank test against `final`). Output: stdout and
benchmarks/results/stopped_trials.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from kubetune.search import Observation, create_suggester  # noqa: E402
from kubetune.spec import TuningJobSpec  # noqa: E402
from kubetune.stopping import create_stopper  # noqa: E402
from suite import lookup, trainer_digits  # noqa: E402

EPOCHS = 12
VARIANTS = ("engine", "final", "pending", "worst")
PROBLEM = trainer_digits()


def curve_of(params: dict[str, object]) -> list[float]:
    return [float(v) for v in lookup("trainer_digits", PROBLEM.parameters, params)["val_loss"]]


RULES = {
    "asha": {"name": "asha", "settings": {"reductionFactor": 3}},
    "median": {"name": "median"},
}


def run(rule: str, variant: str, seed: int, budget: int) -> tuple[float, int]:
    spec = TuningJobSpec.model_validate(
        {
            **PROBLEM.spec(seed),
            "resource": {"name": "epochs", "min": 1, "max": EPOCHS},
            "earlyStopping": RULES[rule],
        }
    )
    suggester, stopper = create_suggester(spec), create_stopper(spec)
    optimum = PROBLEM.make(seed).optimum
    told: list[Observation] = []
    curves: list[list[tuple[int, float]]] = []
    finals: list[float] = []
    spent = 0
    while spent < budget:
        params = suggester.suggest(told, 1)[0]
        full = curve_of(params)
        curve: list[tuple[int, float]] = []
        diverged = False
        for epoch in range(1, EPOCHS + 1):
            if math.isnan(full[epoch - 1]):  # the trial fails at this epoch
                diverged = True
                break
            curve.append((epoch, full[epoch - 1]))
            if epoch < EPOCHS and stopper.should_stop(curve, curves):
                break
        spent += max(1, len(curve))
        if diverged:
            told.append(Observation(params, None, "failed"))
            continue
        curves.append(curve)
        partial = min(v for _, v in curve)
        if len(curve) == EPOCHS:
            finals.append(full[-1])
            told.append(Observation(params, partial, "succeeded"))
        elif variant == "engine":
            told.append(Observation(params, partial, "stopped"))
        elif variant == "final":
            told.append(Observation(params, partial, "succeeded"))
        elif variant == "pending":
            told.append(Observation(params, None, "running"))
        else:
            worst = max(finals, default=partial)
            told.append(Observation(params, max(partial, worst), "stopped"))
    regret = min(finals) - optimum if finals else float("inf")
    return regret, len(curves)


def _job(args: tuple[str, str, int, int]) -> tuple[str, str, int, float, int]:
    rule, variant, seed, budget = args
    return (rule, variant, seed, *run(rule, variant, seed, budget))


def main() -> None:
    from scipy.stats import wilcoxon

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rules", nargs="*", default=list(RULES), choices=list(RULES))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs-budget", type=int, default=40 * EPOCHS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "stopped_trials.json")
    )
    args = parser.parse_args()
    jobs = [
        (r, v, s, args.epochs_budget)
        for r in args.rules
        for v in args.variants
        for s in range(args.seeds)
    ]
    results: dict[tuple[str, str], dict[int, tuple[float, int]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for rule, variant, seed, regret, trials in pool.map(_job, jobs):
            results.setdefault((rule, variant), {})[seed] = (regret, trials)
    print(f"Budget {args.epochs_budget} epochs, {args.seeds} seeds")
    print(
        "| rule | stopped trial told as | median regret [IQR] | mean regret | median trials |"
        " seeds better / worse than final | paired p (Wilcoxon) |"
    )
    print("|---|---|---|---|---|---|---|")
    summary: dict[str, dict[str, object]] = {}
    for (rule, variant), rows in results.items():
        regrets = [rows[s][0] for s in sorted(rows)]
        q1, q2, q3 = np.percentile(regrets, [25, 50, 75])
        trials = statistics.median(t for _, t in rows.values())
        base = (
            [results[(rule, "final")][s][0] for s in sorted(rows)]
            if (rule, "final") in results
            else regrets
        )
        diff = np.array(regrets) - np.array(base)
        better, worse = int((diff < 0).sum()), int((diff > 0).sum())
        p = float(wilcoxon(diff).pvalue) if better + worse else 1.0
        summary[f"{rule} / {variant}"] = {
            "regret_q1_q2_q3": [q1, q2, q3],
            "mean_regret": float(np.mean(regrets)),
            "median_trials": trials,
            "vs_final_better_worse_p": [better, worse, p],
            "regret_by_seed": regrets,
        }
        print(
            f"| {rule} | {variant} | {q2:.4g} [{q1:.3g}, {q3:.3g}] | {np.mean(regrets):.4g} | {trials:g} |"
            f" {better} / {worse} | {p:.2g} |"
        )
    Path(args.out).write_text(
        json.dumps({"command": " ".join(sys.argv), "summary": summary}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
