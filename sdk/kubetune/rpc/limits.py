"""Bounds on what the gRPC services accept, so no request can exhaust a long-running process.

Requests past a bound get INVALID_ARGUMENT with the bound in the message; nothing is truncated
silently.
"""

from __future__ import annotations

MAX_SUGGESTIONS = 1_000  # per GetSuggestions call, whatever the job's budget
MAX_METRIC_NAME = 128  # characters in a metric name
MAX_NAMES_PER_REPORT = 64
MAX_NAMES_PER_TRIAL = 256  # distinct metric names over a trial's life
MAX_STEP = 10**9
MAX_ABS_VALUE = 1e30  # larger values count as failed measurements, like NaN
# Largest request or reply a server takes: a suggestion request carries the job's whole history.
SUGGESTION_MESSAGE_BYTES = 16 * 1024 * 1024
METRICS_MESSAGE_BYTES = 256 * 1024


class LimitExceeded(ValueError):
    """A request went past one of the bounds above; the message names the field and the bound."""


def check_report(step: int, names: list[str]) -> None:
    if not 0 <= step <= MAX_STEP:
        raise LimitExceeded(f"step: must be between 0 and {MAX_STEP} (got {step})")
    if len(names) > MAX_NAMES_PER_REPORT:
        raise LimitExceeded(
            f"metrics: at most {MAX_NAMES_PER_REPORT} per report (got {len(names)})"
        )
    for name in names:
        if not name or len(name) > MAX_METRIC_NAME:
            raise LimitExceeded(
                f"metrics: a name must have 1 to {MAX_METRIC_NAME} characters (got {len(name)})"
            )


def check_trial_names(known: set[str] | dict[str, object], names: list[str]) -> None:
    """Distinct metric names of one trial stay within MAX_NAMES_PER_TRIAL."""
    new = {n for n in names if n not in known}
    if new and len(known) + len(new) > MAX_NAMES_PER_TRIAL:
        raise LimitExceeded(
            f"metrics: at most {MAX_NAMES_PER_TRIAL} distinct names per trial "
            f"({len(known)} known, {len(new)} new)"
        )


def suggestion_cap(max_trials: int, parallelism: int, trials: int) -> int:
    """The most suggestions one request may ask for: the job's free slots and budget."""
    return min(MAX_SUGGESTIONS, parallelism, max(0, max_trials - trials))
