"""Benchmark objectives with known optima: Branin, Hartmann6 and a mixed ML-like space.

Each problem gives a kubetune spec (the `.spec` of a manifest) and a function of a params dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Problem:
    name: str
    spec: dict[str, Any]
    fn: Callable[[dict[str, Any]], float]
    optimum: float


def _spec(parameters: list[dict[str, Any]], seed: int = 0, **algo: Any) -> dict[str, Any]:
    return {
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": parameters,
        "algorithm": {"name": "bayesian", "seed": seed, **algo},
        "maxTrials": 50,
    }


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(1, 7)])
    inner = np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


_OPT_SHIFT = {"sgd": 0.35, "adam": 0.0, "adamw": 0.05}


def mixed(p: dict[str, Any]) -> float:
    """A validation-loss-like surface: log lr, int layers, int batch (log), categorical optimizer."""
    lr_term = (math.log10(p["lr"]) - math.log10(3e-3)) ** 2
    layers_term = 0.08 * (p["layers"] - 3) ** 2
    batch_term = 0.5 * (math.log2(p["batch"]) - 6) ** 2 / 9
    dropout_term = 2.0 * (p["dropout"] - 0.2) ** 2
    return 0.1 + lr_term + layers_term + batch_term + dropout_term + _OPT_SHIFT[p["optimizer"]]


PROBLEMS = {
    "branin": Problem(
        "branin",
        _spec(
            [
                {"name": "x1", "type": "float", "min": -5.0, "max": 10.0},
                {"name": "x2", "type": "float", "min": 0.0, "max": 15.0},
            ]
        ),
        branin,
        0.397887357729739,
    ),
    "hartmann6": Problem(
        "hartmann6",
        _spec([{"name": f"x{i}", "type": "float", "min": 0.0, "max": 1.0} for i in range(1, 7)]),
        hartmann6,
        -3.32236801141551,
    ),
    "mixed": Problem(
        "mixed",
        _spec(
            [
                {"name": "lr", "type": "float", "min": 1e-5, "max": 1.0, "scale": "log"},
                {"name": "layers", "type": "int", "min": 1, "max": 8},
                {"name": "batch", "type": "int", "min": 8, "max": 1024, "scale": "log"},
                {"name": "dropout", "type": "float", "min": 0.0, "max": 0.6},
                {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "adamw"]},
            ]
        ),
        mixed,
        0.1,
    ),
}


def with_seed(spec: dict[str, Any], seed: int, algorithm: str = "bayesian") -> dict[str, Any]:
    out = dict(spec)
    out["algorithm"] = {**spec["algorithm"], "name": algorithm, "seed": seed}
    return out
