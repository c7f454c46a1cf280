"""One contract, two stores: `kubetune.intake` over the local SQLite store and over the operator's
Trial status (group commit), checked by the same tests.

Each store is driven through a `Harness` that can also read what is durably stored (a new
`Store` on the state file; the Trial bodies the API server holds) and restart (a new store over
the same storage, as after a crash between storing and acknowledging). The operator's API server
is played by `FakeApi`: it merge-patches status and bumps resourceVersion, as the real one does.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from kubetune.intake import MetricsIntake
from kubetune.local import Store, StoreTrials
from kubetune.rpc.limits import MAX_NAMES_PER_REPORT, MAX_NAMES_PER_TRIAL, LimitExceeded
from kubetune.rpc.metrics import BadToken, Point, TrialEnded, UnknownTrial
from kubetune.rpc.tokens import digest
from kubetune.spec import TrialState, TuningJob
from kubetune_operator.cache import Cache
from kubetune_operator.metrics import TrialStatusStore
from kubetune_operator.status import stored_curve

from .merge_patch import merge_patch

TOKEN = "tok"


def manifest(rule: str) -> dict[str, Any]:
    stopping: dict[str, Any] = {"name": rule}
    if rule == "asha":
        stopping["settings"] = {"reductionFactor": 3}
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "conf", "namespace": "ns", "uid": f"uid-{rule}", "generation": 1},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "algorithm": {"name": "random"},
            "earlyStopping": stopping,
            "resource": {"name": "steps", "min": 1, "max": 100},
        },
    }


class Harness(Protocol):
    intake: MetricsIntake

    def add(self, name: str, state: TrialState) -> None: ...
    def set_state(self, name: str, state: TrialState) -> None: ...
    def state(self, name: str) -> TrialState: ...
    def stored(self, name: str) -> dict[int, float]: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...


class LocalHarness:
    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        self.path, self.spec = path, TuningJob.parse(job).spec
        self._open()

    def _open(self) -> None:
        self.store = Store(self.path, "loss")
        self.intake = MetricsIntake(StoreTrials(self.store, self.spec))

    def add(self, name: str, state: TrialState) -> None:
        self.store.add_trial(name, len(self.store.trials()), {"x": 0.5}, None, TOKEN)
        self.store.set_state(name, state)

    def set_state(self, name: str, state: TrialState) -> None:
        self.store.set_state(name, state)

    def state(self, name: str) -> TrialState:
        known = self.store.trial(name)
        assert known is not None
        return known[1]

    def stored(self, name: str) -> dict[int, float]:
        reader = Store(self.path, "loss", readonly=True)
        try:
            return dict(reader.curve(name))
        finally:
            reader.close()

    def restart(self) -> None:
        self.store.close()
        self._open()

    def close(self) -> None:
        self.store.close()


class FakeApi:
    """Trial bodies as the API server holds them; status patches merge and bump the version."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.version = 1

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.version += 1
            body = copy.deepcopy(body)
            body["metadata"]["resourceVersion"] = str(self.version)
            self.bodies[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
            return copy.deepcopy(body)

    def patch_status(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            current = self.bodies[(ns, name)]
        return self.put(merge_patch(current, {"status": patch}))


class OperatorHarness:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job, self.api = job, FakeApi()
        self._open()

    def _open(self) -> None:
        """A fresh operator: its cache listed from the API server, as kopf's index does."""
        self.cache = Cache()
        self.cache.put("tuningjobs", self.job)
        for body in self.api.bodies.values():
            self.cache.put("trials", body)

        async def write(ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
            updated = self.api.patch_status(ns, name, patch)
            self.cache.put("trials", updated, own=True)  # as Controller.write_status does
            self.cache.echo("trials", updated)  # its watch event, which changes nothing
            return updated

        self.store = TrialStatusStore(self.cache, asyncio.run, write, interval=0.01)
        self.intake = MetricsIntake(self.store)

    def add(self, name: str, state: TrialState) -> None:
        body = {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "Trial",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "labels": {"kubetune.dev/job": "conf"},
                "annotations": {"kubetune.dev/token-sha256": digest(TOKEN)},
            },
            "spec": {"job": "conf", "index": len(self.api.bodies), "params": {"x": 0.5}},
            "status": {"phase": state.phase},
        }
        self.cache.put("trials", self.api.put(body))

    def set_state(self, name: str, state: TrialState) -> None:
        self.cache.put("trials", self.api.patch_status("ns", name, {"phase": state.phase}))

    def state(self, name: str) -> TrialState:
        return TrialState.from_phase(self.api.bodies[("ns", name)]["status"].get("phase"))

    def stored(self, name: str) -> dict[int, float]:
        return stored_curve(self.api.bodies[("ns", name)])

    def restart(self) -> None:
        self.store.close()
        self._open()

    def close(self) -> None:
        self.store.close()


Factory = Callable[[dict[str, Any]], Harness]


@pytest.fixture(params=["local", "operator"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[Harness] = []

    def factory(job: dict[str, Any]) -> Harness:
        harness: Harness = (
            LocalHarness(tmp_path / "state.db", job)
            if request.param == "local"
            else OperatorHarness(job)
        )
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.close()


def points(*steps: tuple[int, float]) -> list[Point]:
    return [Point(step, {"loss": value}, []) for step, value in steps]


def test_a_batch_is_stored_before_it_is_acknowledged(make: Factory) -> None:
    h = make(manifest("none"))
    h.add("conf-0", TrialState.running)
    verdict = h.intake.report_batch("conf-0", TOKEN, points((1, 0.9), (2, 0.8)))
    assert not verdict.verdict.should_stop and not verdict.refused
    assert h.stored("conf-0") == {1: 0.9, 2: 0.8}


def test_reports_from_several_threads_are_all_stored(make: Factory) -> None:
    h = make(manifest("none"))
    names = [f"conf-{i}" for i in range(4)]
    for name in names:
        h.add(name, TrialState.running)
    errors: list[BaseException] = []

    def send(thread: int) -> None:
        try:
            for k in range(20):  # each thread owns steps thread, thread + 8, ...: no overlap
                step = thread + 8 * k
                name = names[step % len(names)]
                h.intake.report_batch(name, TOKEN, points((step, float(step))))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for i, name in enumerate(names):
        expected = {s: float(s) for s in range(160) if s % len(names) == i}
        assert h.stored(name) == expected


def test_a_late_report_is_refused_and_changes_nothing(make: Factory) -> None:
    h = make(manifest("none"))
    h.add("conf-0", TrialState.running)
    h.intake.report_batch("conf-0", TOKEN, points((1, 0.5)))
    for final in (TrialState.succeeded, TrialState.failed, TrialState.stopped):
        h.set_state("conf-0", final)
        with pytest.raises(TrialEnded, match="has ended"):
            h.intake.report_batch("conf-0", TOKEN, points((2, 0.1)))
    assert h.stored("conf-0") == {1: 0.5}


def test_a_stopping_trial_still_reports_its_last_steps(make: Factory) -> None:
    h = make(manifest("asha"))
    h.add("conf-0", TrialState.stopping)
    verdict = h.intake.report_batch("conf-0", TOKEN, points((7, 0.4)))
    assert verdict.verdict.should_stop and verdict.verdict.reason == "already stopping"
    assert h.stored("conf-0") == {7: 0.4}


def test_a_duplicate_step_is_stored_once(make: Factory) -> None:
    h = make(manifest("none"))
    h.add("conf-0", TrialState.running)
    for _ in range(3):  # a client retrying a batch whose reply it lost
        h.intake.report_batch("conf-0", TOKEN, points((1, 0.9), (2, 0.7)))
    h.intake.report_batch("conf-0", TOKEN, points((2, 0.6)))  # a step sent again, replaced
    assert h.stored("conf-0") == {1: 0.9, 2: 0.6}


def test_a_batch_crossing_a_rung_is_judged_point_by_point(make: Factory) -> None:
    h = make(manifest("asha"))
    for name in ("conf-0", "conf-1"):
        h.add(name, TrialState.running)
        h.intake.report_batch(name, TOKEN, points((1, 0.5), (3, 0.1)))
    h.add("conf-2", TrialState.running)
    # best at rung 1 (kept), worst at rung 3 (stopped): the batch's points are judged in order
    batch = points((1, 0.05), (2, 0.9), (3, 0.9), (4, 0.9))
    verdict = h.intake.report_batch("conf-2", TOKEN, batch)
    assert verdict.verdict.should_stop and "at rung 3 ranks 3 of 3" in verdict.verdict.reason
    assert h.stored("conf-2") == {1: 0.05, 2: 0.9, 3: 0.9, 4: 0.9}  # stored, all of it
    assert h.state("conf-2") is TrialState.stopping  # recorded before the reply
    again = h.intake.report_batch("conf-2", TOKEN, points((5, 0.9)))
    assert again.verdict.reason == "already stopping"


def test_a_restart_between_store_and_acknowledgement_loses_nothing(make: Factory) -> None:
    h = make(manifest("asha"))
    h.add("conf-0", TrialState.running)
    h.intake.report_batch("conf-0", TOKEN, points((1, 0.3), (2, 0.2)))
    h.restart()  # the reply never left: the trainer sends the same batch again
    verdict = h.intake.report_batch("conf-0", TOKEN, points((1, 0.3), (2, 0.2)))
    assert not verdict.verdict.should_stop
    assert h.stored("conf-0") == {1: 0.3, 2: 0.2}
    assert verdict.verdict_step == 3  # the next rung, judged from the reloaded curve


def test_unknown_trials_and_wrong_tokens_are_refused(make: Factory) -> None:
    h = make(manifest("none"))
    h.add("conf-0", TrialState.running)
    with pytest.raises(UnknownTrial):
        h.intake.report_batch("conf-9", TOKEN, points((1, 0.5)))
    with pytest.raises(BadToken):
        h.intake.report_batch("conf-0", "not-the-token", points((1, 0.5)))
    assert h.stored("conf-0") == {}


def test_a_point_past_the_name_bound_is_refused_alone_and_named(make: Factory) -> None:
    h = make(manifest("none"))
    h.add("conf-0", TrialState.running)
    names = ["loss", *(f"m{i}" for i in range(MAX_NAMES_PER_TRIAL - 1))]
    chunks = [
        names[i : i + MAX_NAMES_PER_REPORT] for i in range(0, len(names), MAX_NAMES_PER_REPORT)
    ]
    h.intake.report_batch("conf-0", TOKEN, [Point(0, dict.fromkeys(c, 1.0), []) for c in chunks])
    batch = [Point(1, {"loss": 0.5}, []), Point(2, {"loss": 0.4, "one_too_many": 1.0}, [])]
    verdict = h.intake.report_batch("conf-0", TOKEN, batch)
    assert list(verdict.refused) == [1]
    assert isinstance(verdict.refused[1], LimitExceeded)
    assert f"at most {MAX_NAMES_PER_TRIAL} distinct" in str(verdict.refused[1])
    assert h.stored("conf-0") == {0: 1.0, 1: 0.5}


def test_scraped_points_take_the_same_path(make: Factory) -> None:
    h = make(manifest("none"))
    h.add("conf-0", TrialState.running)
    key = h.intake.store.find("conf-0", TOKEN)
    h.intake.accept_scraped(key, Point(3, {"loss": 0.25}, []))
    assert h.stored("conf-0") == {3: 0.25}
    h.set_state("conf-0", TrialState.succeeded)
    with pytest.raises(TrialEnded):
        h.intake.accept_scraped(key, Point(4, {"loss": 0.2}, []))
