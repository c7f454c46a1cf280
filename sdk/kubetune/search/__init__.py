"""Search algorithms behind one interface: `create_suggester(spec).suggest(history, count)`.

Used by the decision core, the gRPC suggestion service and the benchmarks. Imports no I/O
library. Implementations live in private modules; `_base` holds the interface and its contract.
"""

from ..spec import AlgorithmName, TuningJobSpec
from ._base import BaseSuggester, Observation, Params
from ._bayesian import BayesianSuggester
from ._grid import GridSuggester
from ._hyperband import Bracket, HyperbandSuggester, plan_brackets
from ._pbt import Member, PbtSuggester
from ._random import RandomSuggester
from ._space import SearchSpace

_SUGGESTERS: dict[str, type[BaseSuggester]] = {
    AlgorithmName.bayesian.value: BayesianSuggester,
    AlgorithmName.random.value: RandomSuggester,
    AlgorithmName.grid.value: GridSuggester,
    AlgorithmName.hyperband.value: HyperbandSuggester,
    AlgorithmName.pbt.value: PbtSuggester,
}


def create_suggester(spec: TuningJobSpec) -> BaseSuggester:
    """The suggester named by `spec.algorithm.name`, configured from the spec."""
    return _SUGGESTERS[spec.algorithm.name](spec)


__all__ = [
    "BaseSuggester",
    "BayesianSuggester",
    "Bracket",
    "GridSuggester",
    "HyperbandSuggester",
    "Member",
    "Observation",
    "Params",
    "PbtSuggester",
    "RandomSuggester",
    "SearchSpace",
    "create_suggester",
    "plan_brackets",
]
