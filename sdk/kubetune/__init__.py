"""kubetune: hyperparameter tuning for PyTorch models, on Kubernetes or on one machine.

Training code calls `kubetune.report(step=..., **metrics)` and `kubetune.trial_params()`.
"""

from ._report import report, trial_params

__version__ = "0.1.0"
__all__ = ["__version__", "report", "trial_params"]
