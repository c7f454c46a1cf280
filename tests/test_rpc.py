"""gRPC services over real loopback: suggestions, validation, health, metric reports."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubetune.intake import MetricsIntake
from kubetune.local import Store, StoreTrials
from kubetune.rpc import kubetune_pb2 as pb
from kubetune.rpc import kubetune_pb2_grpc as pb_grpc
from kubetune.rpc.limits import (
    MAX_ABS_VALUE,
    MAX_METRIC_NAME,
    MAX_NAMES_PER_REPORT,
    MAX_NAMES_PER_TRIAL,
    MAX_STEP,
    SUGGESTION_MESSAGE_BYTES,
)
from kubetune.rpc.server import METRICS, SUGGESTION, serve
from kubetune.rpc.suggestion import SuggestionClient
from kubetune.search import Observation, create_suggester
from kubetune.spec import TuningJob

from .conftest import make_spec, manifest


@pytest.fixture
def suggestion_server() -> Iterator[Any]:
    server = serve(suggestions=True)
    yield server
    server.stop(0)


def test_suggestions_over_grpc_match_the_library(suggestion_server: Any) -> None:
    spec = make_spec("bayesian", settings={"initialPoints": 3}, parallelism=2)
    history = [
        Observation(params=p, value=float(i))
        for i, p in enumerate(create_suggester(spec).suggest([], 3))
    ]
    history.append(Observation(params=history[0].params | {"lr": 0.2}, state="running"))
    client = SuggestionClient(suggestion_server.address)
    assert client.suggest(spec, history, 2) == create_suggester(spec).suggest(history, 2)
    client.close()


def test_bad_spec_is_invalid_argument_with_the_field_path(suggestion_server: Any) -> None:
    stub = pb_grpc.SuggestionServiceStub(grpc.insecure_channel(suggestion_server.address))
    bad = make_spec().model_dump(mode="json", by_alias=True)
    bad["parameters"][0]["max"] = 1e-9
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(pb.GetSuggestionsRequest(spec_json=json.dumps(bad), count=1))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.parameters[0].max: must be greater than min" in info.value.details()
    reply = stub.ValidateSpec(pb.ValidateSpecRequest(spec_json=json.dumps(bad)))
    assert not reply.valid and reply.errors[0].path == "spec.parameters[0].max"


def test_count_is_capped_by_free_slots_and_budget(suggestion_server: Any) -> None:
    stub = pb_grpc.SuggestionServiceStub(grpc.insecure_channel(suggestion_server.address))
    spec = make_spec(max_trials=10, parallelism=4).model_dump_json(by_alias=True)
    started = time.monotonic()
    for count in (1_000_000, 5, -1):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetSuggestions(pb.GetSuggestionsRequest(spec_json=spec, count=count))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("count: must be between 0 and 4")
    assert time.monotonic() - started < 5  # refused up front, nothing computed
    reply = stub.GetSuggestions(pb.GetSuggestionsRequest(spec_json=spec, count=4))
    assert len(reply.suggestions) == 4
    spec = make_spec(max_trials=2, parallelism=4).model_dump_json(by_alias=True)
    request = pb.GetSuggestionsRequest(spec_json=spec, count=2)
    for name, value in reply.suggestions[0].params.items():
        request.trials.add(state="running") if not request.trials else None
        request.trials[0].params[name].CopyFrom(value)
    with pytest.raises(grpc.RpcError) as info:  # one trial of two exists: one more at most
        stub.GetSuggestions(request)
    assert info.value.details().startswith("count: must be between 0 and 1")


def test_a_request_larger_than_the_bound_is_refused(suggestion_server: Any) -> None:
    stub = pb_grpc.SuggestionServiceStub(grpc.insecure_channel(suggestion_server.address))
    huge = pb.GetSuggestionsRequest(spec_json="x" * (SUGGESTION_MESSAGE_BYTES + 1), count=1)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(huge)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_trials_from_another_space_are_invalid_argument(suggestion_server: Any) -> None:
    stub = pb_grpc.SuggestionServiceStub(grpc.insecure_channel(suggestion_server.address))
    request = pb.GetSuggestionsRequest(
        spec_json=make_spec().model_dump_json(by_alias=True), count=1
    )
    request.trials.add(state="succeeded", value=1.0).params["other"].number = 0.5
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(request)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("trials[0].params: missing ['dropout', 'layers'")
    trial = request.trials[0]
    trial.params["lr"].number, trial.params["dropout"].number = 0.01, 0.1
    trial.params["layers"].integer, trial.params["units"].integer = 2, 32
    trial.params["optimizer"].text = "adam"
    trial.state = "exploded"
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSuggestions(request)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("trials[0].state: must be one of")


def test_health_checking(suggestion_server: Any) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(suggestion_server.address))
    reply = health.Check(health_pb2.HealthCheckRequest(service=SUGGESTION))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service=METRICS))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


# -- metrics ---------------------------------------------------------------------------------


@pytest.fixture
def metrics_store(tmp_path: Path) -> Iterator[tuple[Store, Any]]:
    job = TuningJob.parse(
        manifest(
            {
                "objective": {"metric": "acc", "direction": "maximize"},
                "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
                "algorithm": {"name": "random"},
                "earlyStopping": {"name": "asha"},
                "resource": {"name": "epochs", "min": 1, "max": 9},
            }
        )
    )
    store = Store(tmp_path / "state.db", "acc")
    for i, token in enumerate(["t0", "t1"]):
        store.add_trial(f"job-{i}", i, {"x": 0.5}, 9, token)
        store.set_state(f"job-{i}", "running")
    server = serve(metrics=MetricsIntake(StoreTrials(store, job.spec)))
    yield store, server
    server.stop(0)


def report_stub(server: Any) -> Any:
    return pb_grpc.MetricsServiceStub(grpc.insecure_channel(server.address))


def test_report_round_trip_persists_before_replying(metrics_store: tuple[Store, Any]) -> None:
    store, server = metrics_store
    stub = report_stub(server)
    reply = stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=1, metrics={"acc": 0.9}))
    assert not reply.should_stop
    assert store.curves() == {"job-0": [(1, 0.9)]}
    # job-1 reaches rung 1 second and worse: ASHA (eta 3, two trials) keeps only the best
    reply = stub.Report(pb.ReportRequest(trial="job-1", token=b"t1", step=1, metrics={"acc": 0.2}))
    assert reply.should_stop and "rung 1" in reply.reason
    assert store.trial("job-1") == ("t1", "stopping")


def test_wrong_token_and_unknown_trial_are_rejected(metrics_store: tuple[Store, Any]) -> None:
    store, server = metrics_store
    stub = report_stub(server)
    for wrong in (b"t1", "t\u00f6".encode(), b"\xff\xfe", b""):  # non-ASCII, not UTF-8, none
        with pytest.raises(grpc.RpcError) as info:
            stub.Report(pb.ReportRequest(trial="job-0", token=wrong, step=1, metrics={"acc": 1.0}))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED, wrong
    with pytest.raises(grpc.RpcError) as info:
        stub.Report(pb.ReportRequest(trial="nope", token=b"t0", step=1, metrics={"acc": 1.0}))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert store.metric_count() == 0


def test_reports_past_the_limits_are_invalid_argument_with_the_limit(
    metrics_store: tuple[Store, Any],
) -> None:
    store, server = metrics_store
    stub = report_stub(server)
    too_many = {f"m{i}": 1.0 for i in range(MAX_NAMES_PER_REPORT + 1)}
    for step, metrics, expected in (
        (MAX_STEP + 1, {"acc": 1.0}, f"step: must be between 0 and {MAX_STEP}"),
        (1, {"x" * (MAX_METRIC_NAME + 1): 1.0}, f"a name must have 1 to {MAX_METRIC_NAME}"),
        (1, too_many, f"at most {MAX_NAMES_PER_REPORT} per report"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=step, metrics=metrics))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert expected in info.value.details()
    assert store.metric_count() == 0
    for first in range(0, MAX_NAMES_PER_TRIAL, MAX_NAMES_PER_REPORT):
        names = {f"m{i}": 1.0 for i in range(first, first + MAX_NAMES_PER_REPORT)}
        stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=1, metrics=names))
    stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=2, metrics={"m0": 2.0}))
    with pytest.raises(grpc.RpcError) as info:
        stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=2, metrics={"new": 1.0}))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {MAX_NAMES_PER_TRIAL} distinct names per trial" in info.value.details()


def test_non_finite_and_huge_values_are_failed_measurements(
    metrics_store: tuple[Store, Any],
) -> None:
    store, server = metrics_store
    stub = report_stub(server)
    stub.Report(
        pb.ReportRequest(trial="job-0", token=b"t0", step=1, metrics={"acc": math.nan, "loss": 1.0})
    )
    stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=2, metrics={"acc": math.inf}))
    stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=3, metrics={"acc": 1e308}))
    stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=4, metrics={"loss": -2e30}))
    assert store.curves() == {}
    assert store.metric_count() == 5  # recorded (as NULL), never part of a curve
    assert store.trials()[0].latest == {"loss": 1.0}
    assert MAX_ABS_VALUE < 2e30


def test_reports_after_the_trial_ended_are_refused_and_not_stored(
    metrics_store: tuple[Store, Any],
) -> None:
    store, server = metrics_store
    stub = report_stub(server)
    stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=1, metrics={"acc": 0.5}))
    store.set_state("job-0", "succeeded", exit_code=0)
    with pytest.raises(grpc.RpcError) as info:  # a child process that outlived its trainer
        stub.Report(pb.ReportRequest(trial="job-0", token=b"t0", step=99, metrics={"acc": 123}))
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "has ended (succeeded)" in info.value.details()
    assert store.curves() == {"job-0": [(1, 0.5)]} and store.metric_count() == 1
    reopened = Store(store.path, "acc")  # the in-memory view is what a fresh load sees
    assert [(t.name, t.state, t.curve) for t in reopened.trials()] == [
        (t.name, t.state, t.curve) for t in store.trials()
    ]
