"""`kubetune convert katib`: Katib Experiments as TuningJobs, every decision explained."""

from ._katib import Conversion, convert_experiment
from ._render import render

__all__ = ["Conversion", "convert_experiment", "render"]
