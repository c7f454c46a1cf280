"""Models of `spec.algorithm` and `spec.earlyStopping`, each with typed per-name settings."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from ._base import SpecModel


class Acquisition(StrEnum):
    ei = "ei"
    lcb = "lcb"


class BayesianSettings(SpecModel):
    initial_points: int = Field(
        10, ge=1, description="Space-filling (quasi-random) trials before the GP takes over."
    )
    acquisition: Acquisition = Field(
        Acquisition.ei, description="Acquisition function: ei (expected improvement) or lcb."
    )
    kappa: float = Field(1.96, gt=0, description="Exploration weight of lcb (ignored by ei).")


class EmptySettings(SpecModel):
    """No settings."""


class GridSettings(SpecModel):
    points: int | None = Field(
        None, ge=1, description="Grid points for each float parameter that has no step."
    )


class HyperbandSettings(SpecModel):
    reduction_factor: int = Field(
        3, ge=2, description="Keep the best 1/reductionFactor of each rung (eta)."
    )
    iterations: int = Field(
        1, ge=1, description="Full Hyperband passes (each runs every bracket once)."
    )


class PbtSettings(SpecModel):
    population_size: int = Field(8, ge=2, description="Members trained side by side.")
    perturbation_interval: int | float = Field(
        gt=0,
        description="Budget (in spec.resource units) each member trains between two "
        "exploit-and-explore rounds.",
    )
    truncation: float = Field(
        0.25, gt=0, le=0.5, description="The bottom fraction that copies a top member each round."
    )
    resample_probability: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Chance that explore draws a parameter anew instead of "
        "perturbing it (x0.8 or x1.2, or the neighbouring choice).",
    )


class _Algorithm(SpecModel):
    seed: int = Field(
        0, ge=0, description="Seed of the search; same seed and history, same trials."
    )


class BayesianAlgorithm(_Algorithm):
    """Gaussian-process Bayesian optimization (scikit-optimize)."""

    name: Literal["bayesian"]
    settings: BayesianSettings = Field(default_factory=BayesianSettings)


class RandomAlgorithm(_Algorithm):
    """Uniform (or log-uniform) random search."""

    name: Literal["random"]
    settings: EmptySettings = Field(default_factory=EmptySettings)


class GridAlgorithm(_Algorithm):
    """Exhaustive grid search over a finite space."""

    name: Literal["grid"]
    settings: GridSettings = Field(default_factory=GridSettings)


class HyperbandAlgorithm(_Algorithm):
    """Hyperband: brackets of successive halving over `spec.resource`."""

    name: Literal["hyperband"]
    settings: HyperbandSettings = Field(default_factory=HyperbandSettings)


class PbtAlgorithm(_Algorithm):
    """Population-based training: members train in intervals; the weak copy a strong member's
    checkpoint and perturb its parameters. Needs spec.checkpoints and spec.resource."""

    name: Literal["pbt"]
    settings: PbtSettings


Algorithm = Annotated[
    BayesianAlgorithm | RandomAlgorithm | GridAlgorithm | HyperbandAlgorithm | PbtAlgorithm,
    Field(discriminator="name"),
]


class MedianSettings(SpecModel):
    min_trials: int = Field(
        3, ge=1, description="Other trials that must have reached a step before it can stop one."
    )
    start_step: int = Field(1, ge=0, description="No trial is stopped before this step.")


class AshaSettings(SpecModel):
    reduction_factor: int = Field(
        3, ge=2, description="Only the best 1/reductionFactor at a rung continue (eta)."
    )


class NoStopping(SpecModel):
    """Never stop a trial early."""

    name: Literal["none"]
    settings: EmptySettings = Field(default_factory=EmptySettings)


class MedianStopping(SpecModel):
    """Stop a trial whose best value is worse than the median of the others' running averages."""

    name: Literal["median"]
    settings: MedianSettings = Field(default_factory=MedianSettings)
    metric: str | None = Field(
        None, description="The objective it judges (required with several objectives)."
    )


class AshaStopping(SpecModel):
    """Asynchronous successive halving: rungs at resource.min * eta^k."""

    name: Literal["asha"]
    settings: AshaSettings = Field(default_factory=AshaSettings)
    metric: str | None = Field(
        None, description="The objective it judges (required with several objectives)."
    )


EarlyStopping = Annotated[NoStopping | MedianStopping | AshaStopping, Field(discriminator="name")]


class AlgorithmName(StrEnum):
    bayesian = "bayesian"
    random = "random"
    grid = "grid"
    hyperband = "hyperband"
    pbt = "pbt"
