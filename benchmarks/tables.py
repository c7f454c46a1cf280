"""Lookup tables for the two real tuning problems of the search-quality suite.

Training is the expensive part of a real tuning problem, so each configuration of a grid is
trained once here and the suite looks its result up (snapping a suggestion to the nearest grid
point). Both tables are committed under benchmarks/results/tables/; rebuild them with

    .venv/bin/python benchmarks/tables.py [--workers 2]

- `trainer_digits.json`: the shipped PyTorch trainer (trainer-image/train.py) on digits, 12
  epochs, with the validation loss and accuracy of every epoch (the learning curves serve the
  stopped-trial experiment);
- `svc_digits.json`: scikit-learn's SVC on digits, 3-fold cross-validated error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
TABLES = Path(__file__).parent / "results" / "tables"
EPOCHS = 12

TRAINER_GRID: dict[str, list[Any]] = {
    "lr": [float(v) for v in np.geomspace(1e-4, 0.3, 8)],
    "hidden_layers": [1, 2, 3],
    "units": [16, 64, 256],
    "dropout": [0.0, 0.25, 0.5],
    "optimizer": ["sgd", "adam", "adamw"],
}
SVC_GRID: dict[str, list[Any]] = {
    "C": [float(v) for v in np.geomspace(1e-2, 1e3, 16)],
    "gamma": [float(v) for v in np.geomspace(1e-5, 1e-1, 16)],
    "kernel": ["rbf", "poly", "sigmoid"],
}


def train_once(config: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "trainer-image"))
    import train

    curve: list[tuple[float, float]] = []

    def report(step: int, **metrics: float) -> bool:
        curve.append((metrics["val_loss"], metrics["val_accuracy"]))
        return False

    train.kubetune.report = report  # type: ignore[assignment]
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
    with contextlib.redirect_stdout(io.StringIO()):
        train.main([*argv, f"--epochs={EPOCHS}"])
    return {
        **config,
        "val_loss": [round(v, 6) for v, _ in curve],
        "val_accuracy": [round(a, 6) for _, a in curve],
    }


def svc_once(config: dict[str, Any]) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    score = cross_val_score(SVC(**config), X, y, cv=3).mean()
    return {**config, "error": round(1.0 - float(score), 6)}


def grid(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def build(name: str, axes: dict[str, list[Any]], fn: Any, workers: int) -> None:
    configs = grid(axes)
    with ProcessPoolExecutor(workers) as pool:
        rows = []
        for i, row in enumerate(pool.map(fn, configs, chunksize=4), 1):
            rows.append(row)
            if i % 50 == 0:
                print(f"  {name}: {i}/{len(configs)}", flush=True)
    TABLES.mkdir(parents=True, exist_ok=True)
    (TABLES / f"{name}.json").write_text(json.dumps({"axes": axes, "rows": rows}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=["trainer_digits", "svc_digits"])
    args = parser.parse_args()
    if args.only in (None, "svc_digits"):
        build("svc_digits", SVC_GRID, svc_once, args.workers)
    if args.only in (None, "trainer_digits"):
        build("trainer_digits", TRAINER_GRID, train_once, args.workers)


if __name__ == "__main__":
    main()
