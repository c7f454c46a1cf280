"""kubetune: hyperparameter tuning for PyTorch models, on Kubernetes or on one machine.

Training code calls `kubetune.report(step=..., **metrics)` and `kubetune.trial_params()`
(`kubetune.flush()` or `with kubetune.reporting():` to deliver buffered reports at a point), and
`kubetune.save_checkpoint` / `kubetune.load_checkpoint` to resume where a trial left off.
Notebooks and scripts use `kubetune.Client` and the job helpers of `kubetune.define`
(`tuning_job`, `loguniform`, `maximize`, `container`...), loaded on first use so that a trainer's
`import kubetune` stays light.
"""

from typing import Any

from ._report import flush, report, reporting, trial_params
from .checkpoint import CheckpointError, checkpoint_dir, load_checkpoint, save_checkpoint

__version__ = "0.1.0"
LAZY = {
    "Client": "kubetune.client",
    "ClientError": "kubetune.client",
    "TuningJob": "kubetune.spec",
    "SpecError": "kubetune.spec",
    **dict.fromkeys(
        [
            "tuning_job",
            "uniform",
            "loguniform",
            "integer",
            "choice",
            "maximize",
            "minimize",
            "bayesian",
            "random",
            "grid",
            "hyperband",
            "median",
            "asha",
            "resource",
            "container",
        ],
        "kubetune.define",
    ),
}
__all__ = [
    "__version__",
    "flush",
    "report",
    "reporting",
    "trial_params",
    "CheckpointError",
    "checkpoint_dir",
    "load_checkpoint",
    "save_checkpoint",
    *LAZY,
]


def __getattr__(name: str) -> Any:
    if name in LAZY:
        import importlib

        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'kubetune' has no attribute {name!r}")
