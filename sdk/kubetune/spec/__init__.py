"""The TuningJob manifest as pydantic models, and its validation errors.

Used by every other part: search/ and stopping/ read `TuningJobSpec`, the drivers parse whole
`TuningJob` manifests, and the CRDs are generated from these models.
"""

from ._algorithms import (
    Acquisition,
    AlgorithmName,
    AshaSettings,
    AshaStopping,
    BayesianAlgorithm,
    BayesianSettings,
    GridAlgorithm,
    GridSettings,
    HyperbandAlgorithm,
    HyperbandSettings,
    MedianSettings,
    MedianStopping,
    NoStopping,
    RandomAlgorithm,
)
from ._collector import MetricsCollector
from ._errors import FieldError, SpecError
from ._job import (
    Direction,
    Objective,
    Resource,
    TrialTemplate,
    TuningJob,
    TuningJobSpec,
    load_yaml_documents,
)
from ._parameters import (
    CategoricalParameter,
    FloatParameter,
    IntParameter,
    Parameter,
    ParamValue,
    Scale,
)
from ._status import (
    API_VERSION,
    BestTrial,
    Condition,
    CurvePoint,
    JobPhase,
    Trial,
    TrialCounts,
    TrialSpec,
    TrialState,
    TrialStatus,
    TuningJobStatus,
)

__all__ = [
    "API_VERSION",
    "Acquisition",
    "AlgorithmName",
    "AshaSettings",
    "AshaStopping",
    "BayesianAlgorithm",
    "BayesianSettings",
    "BestTrial",
    "CategoricalParameter",
    "Condition",
    "CurvePoint",
    "Direction",
    "FieldError",
    "FloatParameter",
    "GridAlgorithm",
    "GridSettings",
    "HyperbandAlgorithm",
    "HyperbandSettings",
    "IntParameter",
    "JobPhase",
    "MedianSettings",
    "MedianStopping",
    "MetricsCollector",
    "NoStopping",
    "Objective",
    "ParamValue",
    "Parameter",
    "RandomAlgorithm",
    "Resource",
    "Scale",
    "SpecError",
    "Trial",
    "TrialCounts",
    "TrialSpec",
    "TrialState",
    "TrialStatus",
    "TrialTemplate",
    "TuningJob",
    "TuningJobSpec",
    "TuningJobStatus",
    "load_yaml_documents",
]
