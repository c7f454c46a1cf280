"""Compare a variant's search-quality run against a reference run, seed by seed (ablations).

    .venv/bin/python benchmarks/compare_runs.py VARIANT.json [--reference results/search_quality.json]

VARIANT.json is a `search_quality.py` output, usually of kubetune's methods only. Its curves replace
the reference's for the methods it ran; the peers come from the reference (they are deterministic
for a seed). Prints per-function medians at 40 trials, the goal checks, the mean log10 ratio of
medians against the peers, and, for each method it ran, on how many (function, seed) runs the
variant ended better or worse than the reference.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import search_quality as sq

Curves = dict[tuple[str, str], list[list[float]]]
BUDGET = 40


def load(path: Path) -> Curves:
    raw = json.loads(path.read_text())["regret_curves"]
    return {tuple(k.split(" / ", 1)): v for k, v in raw.items()}  # type: ignore[misc]


def median(curves: Curves, method: str, problem: str) -> float:
    return statistics.median(c[BUDGET - 1] for c in curves[(method, problem)])


def mean_log_ratio(curves: Curves, ours: str, peer: str, problems: list[str]) -> float:
    logs = [
        math.log10(max(median(curves, ours, p), 1e-12) / max(median(curves, peer, p), 1e-12))
        for p in problems
        if max(median(curves, ours, p), median(curves, peer, p)) > 1e-9
    ]
    return sum(logs) / len(logs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", type=Path)
    parser.add_argument("--reference", type=Path, default=sq.RESULTS / "search_quality.json")
    args = parser.parse_args()
    reference, variant = load(args.reference), load(args.variant)
    merged = {**reference, **variant}
    problems = sorted({p for _, p in variant})
    methods = sorted({m for m, _ in variant})
    print(f"| function | {' | '.join(f'{m} (ref -> variant)' for m in methods)} |")
    print("|---|" + "---|" * len(methods))
    for p in problems:
        cells = [f"{median(reference, m, p):.3g} -> {median(variant, m, p):.3g}" for m in methods]
        print(f"| {p} | {' | '.join(cells)} |")
    print("\n".join(["", *sq.goals(merged, problems, BUDGET), ""]))
    for ours, peer in ((sq.OURS, sq.GP), (sq.OURS, sq.TPE), (sq.OURS4, sq.GP4)):
        if ours in methods:
            before = mean_log_ratio(reference, ours, peer, problems)
            after = mean_log_ratio(merged, ours, peer, problems)
            print(f"mean log10({ours} / {peer}): {before:+.3f} -> {after:+.3f}")
    for m in methods:
        pairs = [
            (new[BUDGET - 1], old[BUDGET - 1])
            for p in problems
            for new, old in zip(variant[(m, p)], reference[(m, p)], strict=False)
        ]
        better = sum(a < 0.999 * b for a, b in pairs)
        worse = sum(a > 1.001 * b for a, b in pairs)
        print(f"{m}, run by run: variant better {better}, worse {worse}, of {len(pairs)}")


if __name__ == "__main__":
    main()
