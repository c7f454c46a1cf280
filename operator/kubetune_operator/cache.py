"""The operator's view of its objects, fed by kopf's watches: TuningJobs, Trials, trial Pods and
trial Jobs (of `trialTemplate.job`).

Written from the event loop (watch events and the responses of our own writes), read from the
loop and from gRPC threads, hence the lock. resourceVersions are opaque: they are compared for
equality only. The cache holds the version our own write returned, and knows its watch event
when it comes (`echo`: nothing new). Any other version from the watch replaces what is held: kopf
hands an object's events over in order (squashing a burst into its latest), so an event that was
already on its way when our write returned is followed, within a batch window, by our write's
own event or a newer one.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from kubetune.spec import TrialState

from .builders import JOB_LABEL

Key = tuple[str, str]  # (namespace, name)
KINDS = ("tuningjobs", "trials", "pods", "jobs")


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def job_key_of(obj: Mapping[str, Any]) -> Key | None:
    meta = obj["metadata"]
    job = (meta.get("labels") or {}).get(JOB_LABEL)
    return (meta.get("namespace", ""), job) if job else None


def _version(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("resourceVersion") or "")


def _ended(kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """A Trial went from active to final."""
    if kind != "trials" or old is None:
        return False
    before, after = (
        TrialState.from_phase((o.get("status") or {}).get("phase")) for o in (old, new)
    )
    return after.final and not before.final


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): several times copy.deepcopy's
    speed, which matters on the event loop at every watch event."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, Mapping):  # kopf's read-only body views
        return {k: _copy(v) for k, v in value.items()}
    return copy.deepcopy(value)


class Cache:
    """`trial_ended(trial)` hears of each Trial this process sees go from running to ended."""

    def __init__(self, trial_ended: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.trial_ended = trial_ended
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {k: {} for k in KINDS}
        self._own: dict[str, set[Key]] = {k: set() for k in KINDS}  # held versions we wrote
        self._by_job: dict[str, dict[Key, dict[str, dict[str, Any]]]] = {
            k: defaultdict(dict) for k in KINDS
        }

    def put(self, kind: str, obj: Mapping[str, Any], own: bool = False) -> None:
        """Hold (a copy of) `obj` unless a newer or the same version is held. `own`: it is the
        response to one of our own writes, whose watch event will change nothing."""
        key = key_of(obj)
        if self.holds(kind, obj):
            return  # this very version is held already (the index and the event handler)
        copied: dict[str, Any] = _copy(obj)
        copied["metadata"].pop("managedFields", None)  # never read here; large at scale
        with self._lock:
            old = self._objects[kind].get(key)
            self._objects[kind][key] = copied
            (self._own[kind].add if own else self._own[kind].discard)(key)
            job = job_key_of(copied)
            if job is not None:
                self._by_job[kind][job][key[1]] = copied
        if _ended(kind, old, copied) and self.trial_ended is not None:
            self.trial_ended(copied)

    def holds(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """Whether this very version of `obj` is held."""
        version = _version(obj)
        with self._lock:
            held = self._objects[kind].get(key_of(obj))
        return held is not None and bool(version) and _version(held) == version

    def echo(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """Whether `obj` is the watch event of one of our own writes, already held: nothing new."""
        with self._lock:
            own = key_of(obj) in self._own[kind]
        return own and self.holds(kind, obj)

    def drop(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = key_of(obj)
        with self._lock:
            self._own[kind].discard(key)
            self._objects[kind].pop(key, None)
            job = job_key_of(obj)
            if job is not None:
                self._by_job[kind][job].pop(key[1], None)
                if not self._by_job[kind][job]:
                    del self._by_job[kind][job]

    def get(self, kind: str, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._objects[kind].get(key)

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every cached object of a kind (a snapshot)."""
        with self._lock:
            return list(self._objects[kind].values())

    def of_job(self, kind: str, job: Key) -> dict[str, dict[str, Any]]:
        """Trials or pods of one job, by name (a snapshot)."""
        with self._lock:
            return dict(self._by_job[kind].get(job, {}))

    def find_trial(self, name: str) -> list[dict[str, Any]]:
        """Trials of this name in any namespace (the metrics API names trials only)."""
        with self._lock:
            return [o for (_, n), o in self._objects["trials"].items() if n == name]
