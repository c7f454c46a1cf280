"""The `/metrics` exporter and the pull collector, against real HTTP and gRPC on loopback."""

from __future__ import annotations

import contextlib
import http.server
import math
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from kubetune.rpc import kubetune_pb2 as pb
from kubetune.rpc import kubetune_pb2_grpc as pb_grpc
from kubetune.rpc.metrics import (
    BadToken,
    BatchVerdict,
    Point,
    ReportVerdict,
    TrialEnded,
    UnknownTrial,
)
from kubetune.rpc.server import serve
from kubetune.spec import TrialCounts
from kubetune.telemetry import (
    JobCounts,
    PullCollector,
    Sample,
    ScrapeError,
    Target,
    Telemetry,
    read_sample,
)
from prometheus_client.parser import text_string_to_metric_families

from .prometheus import PROMTOOL
from .waiting import wait_for

NAMED = {  # the series the issue names, as families (counters lose `_total`)
    "kubetune_build_info": "gauge",  # an Info, which the text format carries as a gauge
    "kubetune_trials": "gauge",
    "kubetune_best_objective": "gauge",
    "kubetune_trials_created": "counter",
    "kubetune_trials_finished": "counter",
    "kubetune_trial_duration_seconds": "histogram",
    "kubetune_suggest_duration_seconds": "histogram",
    "kubetune_early_stop_decisions": "counter",
    "kubetune_metric_reports": "counter",
    "kubetune_pareto_front_size": "gauge",
    "kubetune_hypervolume": "gauge",
}


def families(telemetry: Telemetry) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(telemetry.render().decode())}


def sample_value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    for family in families(telemetry).values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def busy_telemetry(jobs: list[JobCounts]) -> Telemetry:
    telemetry = Telemetry(lambda: jobs)
    telemetry.timed_suggest(lambda spec, history, count: [])(_Spec(), [], 1)
    telemetry.stop_decision("asha", True)
    telemetry.stop_decision("asha", False)
    telemetry.report("accepted")
    telemetry.trial_ended(12.5)
    return telemetry


class _Spec:
    class algorithm:
        name = "bayesian"


JOBS = [
    JobCounts(
        "ml", "a", "Running", TrialCounts(created=7, running=2, succeeded=3, stopped=1), 10, 0.93
    ),
    JobCounts("ml", "c", "Running", TrialCounts(created=4, succeeded=4), 8, None, 3, 11.5),
    JobCounts("ml", "b", "Pending", TrialCounts(), 5, None),
]


def test_every_named_series_is_exported_with_its_type() -> None:
    found = families(busy_telemetry(JOBS))
    for name, kind in NAMED.items():
        assert found[name].type == kind, name
    telemetry = busy_telemetry(JOBS)
    assert sample_value(telemetry, "kubetune_trials", tuningjob="a", state="running") == 2
    assert sample_value(telemetry, "kubetune_trials", tuningjob="a", state="stopping") == 0
    assert sample_value(telemetry, "kubetune_trials_created_total", tuningjob="a") == 7
    assert sample_value(telemetry, "kubetune_trials_finished_total", result="stopped") == 1
    assert sample_value(telemetry, "kubetune_best_objective", tuningjob="a") == 0.93
    assert sample_value(telemetry, "kubetune_best_objective", tuningjob="b") is None
    assert sample_value(telemetry, "kubetune_pareto_front_size", tuningjob="c") == 3
    assert sample_value(telemetry, "kubetune_hypervolume", tuningjob="c") == 11.5
    assert sample_value(telemetry, "kubetune_pareto_front_size", tuningjob="a") is None
    assert (
        sample_value(telemetry, "kubetune_suggest_duration_seconds_count", algorithm="bayesian")
        == 1
    )
    assert sample_value(telemetry, "kubetune_early_stop_decisions_total", decision="stop") == 1
    assert sample_value(telemetry, "kubetune_trial_duration_seconds_sum") == 12.5
    assert sample_value(telemetry, "kubetune_build_info") == 1


def test_a_deleted_jobs_series_disappear() -> None:
    jobs = list(JOBS)
    telemetry = Telemetry(lambda: jobs)
    assert sample_value(telemetry, "kubetune_trials", tuningjob="b", state="stopping") == 0
    jobs.pop()
    assert sample_value(telemetry, "kubetune_trials", tuningjob="b", state="stopping") is None
    assert sample_value(telemetry, "kubetune_trials", tuningjob="a", state="running") == 2


@pytest.mark.skipif(PROMTOOL is None, reason="no promtool (apt-get install prometheus)")
def test_promtool_finds_nothing_to_complain_about() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=busy_telemetry(JOBS).render(),
        capture_output=True,
    )
    assert result.returncode == 0 and not result.stdout and not result.stderr, result


def test_failed_suggestions_are_counted_and_timed() -> None:
    telemetry = Telemetry()

    def broken(spec: Any, history: Any, count: int) -> list[Any]:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        telemetry.timed_suggest(broken)(_Spec(), [], 1)
    assert sample_value(telemetry, "kubetune_suggest_errors_total", algorithm="bayesian") == 1
    assert (
        sample_value(telemetry, "kubetune_suggest_duration_seconds_count", algorithm="bayesian")
        == 1
    )


class Refusing:
    """A MetricsBackend that answers by the trial's name."""

    def report_batch(self, trial: str, token: str, points: list[Point]) -> BatchVerdict:
        errors = {"gone": UnknownTrial(trial), "ended": TrialEnded(trial, "Succeeded")}
        if trial in errors:
            raise errors[trial]
        if token != "good":
            raise BadToken(trial)
        return BatchVerdict(ReportVerdict(False))


def test_each_report_is_counted_by_its_result() -> None:
    results: list[str] = []
    server = serve("127.0.0.1:0", metrics=Refusing(), observe_report=results.append)
    stub = pb_grpc.MetricsServiceStub(grpc.insecure_channel(server.address))
    try:
        for trial, token, value in [
            ("t", "good", 1.0),
            ("t", "good", math.nan),
            ("t", "bad", 1.0),
            ("gone", "good", 1.0),
            ("ended", "good", 1.0),
            ("", "good", 1.0),
        ]:
            request = pb.ReportRequest(trial=trial, token=token.encode(), step=1)
            request.metrics["loss"] = value
            with contextlib.suppress(grpc.RpcError):
                stub.Report(request, timeout=10)
    finally:
        server.stop()
    assert results == [
        "accepted",
        "non_finite",
        "bad_token",
        "unknown_trial",
        "trial_ended",
        "invalid_argument",
    ]


# -- the pull collector ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "step 3\nval_accuracy 0.5\nval_loss 2\n",
            Sample(3, {"val_accuracy": 0.5, "val_loss": 2.0}, []),
        ),
        ("# TYPE step gauge\nstep 4\nval_accuracy NaN\n", Sample(4, {}, ["val_accuracy"])),
        ("step 1\nval_accuracy +Inf\nval_loss 1\n", Sample(1, {"val_loss": 1.0}, ["val_accuracy"])),
    ],
)
def test_a_page_gives_the_step_and_the_metrics(text: str, expected: Sample) -> None:
    assert read_sample(text, ["val_accuracy", "val_loss"], "step") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<html>nope</html>", "bad_format"),
        ("val_accuracy 0.5\n", "missing_step"),
        ("step 2\nval_loss 1\n", "missing_objective"),
        ("step 1.5\nval_accuracy 1\n", "bad_step"),
        ("step -1\nval_accuracy 1\n", "bad_step"),
        ('step 1\nval_accuracy{split="a"} 1\nval_accuracy{split="b"} 2\n', "ambiguous"),
    ],
)
def test_a_bad_page_is_a_scrape_error_that_says_why(text: str, reason: str) -> None:
    with pytest.raises(ScrapeError) as caught:
        read_sample(text, ["val_accuracy", "val_loss"], "step")
    assert caught.value.reason == reason


class Endpoint:
    """A trial's metrics endpoint whose page, status and speed the test sets."""

    def __init__(self) -> None:
        self.body, self.status, self.hits = b"", 200, 0
        self.gate = threading.Event()
        self.gate.set()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.hits += 1
                endpoint.gate.wait(30)
                self.send_response(endpoint.status)
                self.end_headers()
                self.wfile.write(endpoint.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def target(self, interval: float = 0.05, timeout: float = 2.0) -> Target:
        return Target(self.url, ("val_accuracy",), "step", interval, timeout)

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[Any, Sample]] = []
        self.troubles: list[tuple[Any, str | None]] = []

    def deliver(self, key: Any, sample: Sample) -> None:
        self.delivered.append((key, sample))

    def trouble(self, key: Any, problem: ScrapeError | None) -> None:
        self.troubles.append((key, problem.reason if problem else None))


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    made = [Endpoint(), Endpoint()]
    yield made
    for e in made:
        e.close()


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, PullCollector, Telemetry]]:
    r, telemetry = Recorder(), Telemetry()
    collector = PullCollector(r.deliver, r.trouble, telemetry, max_backoff=0.2)
    collector.startup_grace = 0.0
    yield r, collector, telemetry
    collector.close()


def test_each_step_is_delivered_once(recorder: Any, endpoints: list[Endpoint]) -> None:
    r, collector, telemetry = recorder
    e = endpoints[0]
    e.body = b"step 0\nval_accuracy 0\n"  # a fresh gauge: no result yet
    collector.set_targets("job", {"t": e.target()})
    wait_for(lambda: e.hits >= 3, 30, "scrapes of step 0")
    assert r.delivered == []
    e.body = b"step 1\nval_accuracy 0.5\n"
    wait_for(lambda: r.delivered, 30, "step 1")
    hits = e.hits
    wait_for(lambda: e.hits >= hits + 3, 30, "more scrapes of step 1")
    e.body = b"step 2\nval_accuracy 0.7\n"
    wait_for(lambda: len(r.delivered) == 2, 30, "step 2")
    assert [(k, s.step, s.metrics) for k, s in r.delivered] == [
        ("t", 1, {"val_accuracy": 0.5}),
        ("t", 2, {"val_accuracy": 0.7}),
    ]
    assert sample_value(telemetry, "kubetune_metric_reports_total", result="accepted") == 2
    collector.set_targets("job", {})
    assert collector.targets() == []


def test_a_broken_endpoint_is_reported_retried_and_forgiven(
    recorder: Any, endpoints: list[Endpoint]
) -> None:
    r, collector, telemetry = recorder
    e = endpoints[0]
    e.body = b"<html>oops</html>"
    collector.set_targets("job", {"t": e.target()})
    wait_for(lambda: r.troubles == [("t", "bad_format")], 30, "the bad format reported")
    hits = e.hits
    wait_for(lambda: e.hits >= hits + 2, 30, "retries (the backoff is bounded)")
    e.body = b"step 1\nval_loss 3\n"
    wait_for(lambda: r.troubles[-1] == ("t", "missing_objective"), 30, "the missing objective")
    e.status = 500
    wait_for(lambda: r.troubles[-1] == ("t", "http_error"), 30, "the HTTP error")
    e.status, e.body = 200, b"step 1\nval_accuracy 0.5\n"
    wait_for(lambda: r.troubles[-1] == ("t", None), 30, "recovery")
    assert [s.step for _, s in r.delivered] == [1]
    assert sample_value(telemetry, "kubetune_scrapes_total", result="bad_format") >= 1  # type: ignore[operator]


def test_an_unreachable_or_slow_endpoint_holds_up_no_other(
    recorder: Any, endpoints: list[Endpoint]
) -> None:
    r, collector, _ = recorder
    slow, fast = endpoints
    slow.gate.clear()  # answers nothing until released
    fast.body = b"step 1\nval_accuracy 0.5\n"
    gone = Target("http://127.0.0.1:9/metrics", ("val_accuracy",), "step", 0.05, 1.0)
    collector.set_targets(
        "job", {"slow": slow.target(timeout=0.5), "fast": fast.target(), "gone": gone}
    )
    wait_for(lambda: ("slow", "timeout") in r.troubles, 30, "the timeout reported")
    wait_for(lambda: ("gone", "unreachable") in r.troubles, 30, "the refusal reported")
    hits = fast.hits
    wait_for(lambda: fast.hits >= hits + 5, 30, "the fast endpoint scraped meanwhile")
    assert [k for k, _ in r.delivered] == ["fast"]


def test_a_starting_trial_is_not_a_problem_until_the_grace_ends(
    recorder: Any, endpoints: list[Endpoint]
) -> None:
    r, collector, _ = recorder
    collector.startup_grace = 3600.0
    gone = Target("http://127.0.0.1:9/metrics", ("val_accuracy",), "step", 0.05, 1.0)
    e = endpoints[0]
    e.body = b"step 1\nval_accuracy 0.5\n"
    collector.set_targets("job", {"starting": gone, "marker": e.target()})
    wait_for(lambda: e.hits >= 10, 30, "several scrape rounds")
    assert r.troubles == []


def test_the_exporter_serves_over_http() -> None:
    telemetry = busy_telemetry(JOBS)
    endpoint = telemetry.serve("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics") as response:
            text = response.read().decode()
    finally:
        endpoint.close()
    assert 'kubetune_trials{namespace="ml",state="running",tuningjob="a"} 2.0' in text
