"""The search-quality suite: BBOB functions from `ioh`, noisy and mixed variants, two real problems.

A `Problem` makes one `Instance` per seed. For a BBOB function the seed picks the BBOB instance
(seed 0 is instance 1), so the optimum moves from seed to seed and neither the centre nor a
boundary gives a free win. An instance has the function a method sees (`observe`, noisy for the
noisy variants) and the noise-free one that regret is measured on (`truth`), with its optimum.

Groups follow BBOB's own: separable, moderate conditioning, ill-conditioned, multimodal with
adequate global structure, multimodal with weak global structure. Then noisy variants, mixed
int/categorical spaces, and two real tuning problems answered from lookup tables
(benchmarks/tables.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

Params = dict[str, Any]
TABLES = Path(__file__).parent / "results" / "tables"


@dataclass(frozen=True)
class Instance:
    observe: Callable[[Params], float]  # what a method is told
    truth: Callable[[Params], float]  # noise-free: what its pick is worth
    optimum: float


@dataclass(frozen=True)
class Problem:
    name: str
    group: str
    parameters: list[dict[str, Any]]
    make: Callable[[int], Instance]

    def spec(self, seed: int, algorithm: str = "bayesian") -> dict[str, Any]:
        return {
            "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": self.parameters,
            "algorithm": {"name": algorithm, "seed": seed},
            "maxTrials": 1000,
        }


def _floats(dim: int, low: float = -5.0, high: float = 5.0) -> list[dict[str, Any]]:
    return [{"name": f"x{i}", "type": "float", "min": low, "max": high} for i in range(dim)]


def _bbob(fid: int, dim: int, instance: int) -> tuple[Callable[[list[float]], float], float]:
    import ioh

    problem = ioh.get_problem(fid, instance, dim, ioh.ProblemClass.BBOB)
    return (lambda x: float(problem(list(x)))), float(problem.optimum.y)


def bbob(fid: int, dim: int, group: str, label: str) -> Problem:
    def make(seed: int) -> Instance:
        f, optimum = _bbob(fid, dim, seed + 1)

        def value(p: Params) -> float:
            return f([p[f"x{i}"] for i in range(dim)])

        return Instance(value, value, optimum)

    return Problem(f"f{fid}-{label}-d{dim}", group, _floats(dim), make)


def noisy(fid: int, dim: int, label: str, sigma: float = 0.3, floor: float = 0.02) -> Problem:
    """A BBOB function seen through noise: the gap to the optimum is scaled by exp(sigma * N),
    and Gaussian noise of `floor` times the 10th percentile of random points' gaps is added
    (so the noise still matters near the optimum, where the multiplicative part vanishes)."""

    def make(seed: int) -> Instance:
        f, optimum = _bbob(fid, dim, seed + 1)
        rng = np.random.default_rng([fid, dim, seed])
        gaps = [f(list(x)) - optimum for x in rng.uniform(-5, 5, (256, dim))]
        additive = floor * float(np.percentile(gaps, 10))

        def truth(p: Params) -> float:
            return f([p[f"x{i}"] for i in range(dim)])

        def observe(p: Params) -> float:
            gap = truth(p) - optimum
            return optimum + gap * math.exp(sigma * rng.normal()) + additive * rng.normal()

        return Instance(observe, truth, optimum)

    return Problem(f"f{fid}-{label}-d{dim}-noisy", "noisy", _floats(dim), make)


_OPT_SHIFT = {"sgd": 0.35, "adam": 0.0, "adamw": 0.05}


def _ml_surface(p: Params) -> float:
    """A validation-loss-like surface: log lr, int layers, int batch (log), categorical optimizer."""
    lr_term = (math.log10(p["lr"]) - math.log10(3e-3)) ** 2
    layers_term = 0.08 * (p["layers"] - 3) ** 2
    batch_term = 0.5 * (math.log2(p["batch"]) - 6) ** 2 / 9
    dropout_term = 2.0 * (p["dropout"] - 0.2) ** 2
    return 0.1 + lr_term + layers_term + batch_term + dropout_term + _OPT_SHIFT[p["optimizer"]]


def mixed_ml() -> Problem:
    parameters = [
        {"name": "lr", "type": "float", "min": 1e-5, "max": 1.0, "scale": "log"},
        {"name": "layers", "type": "int", "min": 1, "max": 8},
        {"name": "batch", "type": "int", "min": 8, "max": 1024, "scale": "log"},
        {"name": "dropout", "type": "float", "min": 0.0, "max": 0.6},
        {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "adamw"]},
    ]
    return Problem(
        "mixed-ml-d5", "mixed", parameters, lambda seed: Instance(_ml_surface, _ml_surface, 0.1)
    )


def mixed_gallagher() -> Problem:
    """Gallagher's 101 peaks on two floats, two int offsets and a categorical with its own
    offset; each seed moves the int optimum and reorders the categories."""
    parameters = [
        *_floats(2),
        {"name": "i0", "type": "int", "min": -4, "max": 4},
        {"name": "i1", "type": "int", "min": -4, "max": 4},
        {"name": "colour", "type": "categorical", "values": ["red", "green", "blue"]},
    ]

    def make(seed: int) -> Instance:
        f, optimum = _bbob(21, 2, seed + 1)
        rng = np.random.default_rng([21, seed])
        a, b = (int(v) for v in rng.integers(-4, 5, 2))
        shift = dict(zip(["red", "green", "blue"], rng.permutation([0.0, 2.0, 6.0]), strict=True))

        def value(p: Params) -> float:
            ints = 0.5 * ((p["i0"] - a) ** 2 + (p["i1"] - b) ** 2)
            return f([p["x0"], p["x1"]]) + ints + float(shift[p["colour"]])

        return Instance(value, value, optimum)

    return Problem("mixed-gallagher-d5", "mixed", parameters, make)


@cache
def _table(name: str) -> dict[str, Any]:
    return dict(json.loads((TABLES / f"{name}.json").read_text()))


def _nearest(value: Any, axis: list[Any], log: bool) -> Any:
    if isinstance(axis[0], str):
        return value
    key = (lambda v: math.log(v)) if log else (lambda v: float(v))
    return min(axis, key=lambda a: abs(key(a) - key(value)))


def lookup(name: str, parameters: list[dict[str, Any]], params: Params) -> dict[str, Any]:
    """The row of table `name` nearest to `params` (in log space for log-scaled parameters)."""
    table = _table(name)
    axes = table["axes"]
    logs = {p["name"]: p.get("scale") == "log" for p in parameters}
    key = tuple(_nearest(params[k], axes[k], logs[k]) for k in axes)
    return _rows(name)[key]


@cache
def _rows(name: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    axes = _table(name)["axes"]
    return {tuple(row[k] for k in axes): row for row in _table(name)["rows"]}


def table_problem(
    name: str, parameters: list[dict[str, Any]], metric: Callable[[dict[str, Any]], float]
) -> Problem:
    """A real problem answered from a lookup table (`lookup`)."""

    def make(seed: int) -> Instance:
        def value(p: Params) -> float:
            return metric(lookup(name, parameters, p))

        finite = [v for row in _table(name)["rows"] if math.isfinite(v := metric(row))]
        return Instance(value, value, min(finite))  # diverged configurations have no optimum

    return Problem(name, "real", parameters, make)


def trainer_digits() -> Problem:
    return table_problem(
        "trainer_digits",
        [
            {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
            {"name": "hidden_layers", "type": "int", "min": 1, "max": 3},
            {"name": "units", "type": "int", "min": 16, "max": 256, "scale": "log"},
            {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5},
            {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "adamw"]},
        ],
        lambda row: float(row["val_loss"][-1]),
    )


def svc_digits() -> Problem:
    return table_problem(
        "svc_digits",
        [
            {"name": "C", "type": "float", "min": 1e-2, "max": 1e3, "scale": "log"},
            {"name": "gamma", "type": "float", "min": 1e-5, "max": 1e-1, "scale": "log"},
            {"name": "kernel", "type": "categorical", "values": ["rbf", "poly", "sigmoid"]},
        ],
        lambda row: float(row["error"]),
    )


SUITE: dict[str, Problem] = {
    p.name: p
    for p in [
        bbob(1, 8, "separable", "sphere"),
        bbob(2, 4, "separable", "ellipsoid"),
        bbob(3, 3, "separable", "rastrigin"),
        bbob(6, 4, "moderate", "attractive-sector"),
        bbob(8, 6, "moderate", "rosenbrock"),
        bbob(10, 5, "ill-conditioned", "ellipsoid-rotated"),
        bbob(13, 3, "ill-conditioned", "sharp-ridge"),
        bbob(15, 3, "multimodal-global", "rastrigin-rotated"),
        bbob(17, 5, "multimodal-global", "schaffers"),
        bbob(20, 4, "multimodal-weak", "schwefel"),
        bbob(21, 6, "multimodal-weak", "gallagher101"),
        bbob(22, 2, "multimodal-weak", "gallagher21"),
        bbob(24, 2, "multimodal-weak", "lunacek"),
        noisy(8, 4, "rosenbrock"),
        noisy(21, 4, "gallagher101"),
        mixed_ml(),
        mixed_gallagher(),
        trainer_digits(),
        svc_digits(),
    ]
}
QUICK = [
    "f3-rastrigin-d3",
    "f8-rosenbrock-d6",
    "f15-rastrigin-rotated-d3",
    "f21-gallagher101-d6",
    "f21-gallagher101-d4-noisy",
    "mixed-gallagher-d5",
]
