"""The embedded driver: `kubetune run` tunes a TuningJob on this machine (no cluster)."""

from ._executor import LocalCommand, LocalExecutor, build_local_command
from ._runner import JobMismatch, LocalRunner, RunResult
from ._store import Store, StoreTrials, TrialRow

__all__ = [
    "JobMismatch",
    "LocalCommand",
    "LocalExecutor",
    "LocalRunner",
    "RunResult",
    "Store",
    "StoreTrials",
    "TrialRow",
    "build_local_command",
]
