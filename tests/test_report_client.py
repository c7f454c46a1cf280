"""`kubetune.report` batches points, and loses none: at exit, on SIGTERM, at a `with` block's end
and across an outage, against the local runner's real backend over loopback gRPC."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import kubetune
import pytest
from kubetune import _report
from kubetune.intake import MetricsIntake
from kubetune.local import Store, StoreTrials
from kubetune.rpc import kubetune_pb2 as pb
from kubetune.rpc import kubetune_pb2_grpc as pb_grpc
from kubetune.rpc.metrics import BatchVerdict, MetricsServicer, Point
from kubetune.rpc.server import serve
from kubetune.spec import TuningJob

from .conftest import manifest
from .waiting import free_port, wait_for

NEVER_LINGER_OUT = "600000"  # ms: only a size limit, a verdict or a flush sends


def job(early_stopping: bool) -> TuningJob:
    spec: dict[str, Any] = {
        "objective": {"metric": "acc", "direction": "maximize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "algorithm": {"name": "random"},
    }
    if early_stopping:  # ASHA rungs at 1, 3 and 9
        spec |= {
            "earlyStopping": {"name": "asha"},
            "resource": {"name": "epochs", "min": 1, "max": 27},
        }
    return TuningJob.parse(manifest(spec))


class Counting:
    """The runner's backend, counting the batches it is handed."""

    def __init__(self, backend: MetricsIntake) -> None:
        self.backend = backend
        self.batches: list[list[int]] = []

    def report_batch(self, trial: str, token: str, points: list[Point]) -> BatchVerdict:
        self.batches.append([p.step for p in points])
        return self.backend.report_batch(trial, token, points)


def new_store(tmp_path: Path, trials: int = 1) -> Store:
    store = Store(tmp_path / "state.db", "acc")
    for i in range(trials):
        store.add_trial(f"job-{i}", i, {"x": 0.5}, 27, f"t{i}")
        store.set_state(f"job-{i}", "running")
    return store


@pytest.fixture
def as_trial(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make this process trial job-0 reporting to `address`; the reporter is closed after."""

    def point_at(address: str, linger_ms: str = "5") -> None:
        monkeypatch.setenv("KUBETUNE_METRICS_ADDR", address)
        monkeypatch.setenv("KUBETUNE_TRIAL", "job-0")
        monkeypatch.setenv("KUBETUNE_TRIAL_TOKEN", "t0")
        monkeypatch.setattr(_report, "LINGER_SECONDS", float(linger_ms) / 1000)

    monkeypatch.setattr(_report, "_reporter", None)
    monkeypatch.setattr(_report, "RETRY_SECONDS", 5.0)
    yield point_at
    if _report._reporter is not None:
        _report._reporter.close(5.0)


def test_report_without_address_just_logs(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("KUBETUNE_METRICS_ADDR", raising=False)
    monkeypatch.setattr(_report, "_reporter", None)
    assert kubetune.report(step=3, acc=0.5) is False
    assert "[kubetune] step 3: acc=0.5" in capsys.readouterr().err
    assert kubetune.flush() is False
    with pytest.raises(ValueError, match="step"):
        kubetune.report(step=-1, acc=1.0)
    monkeypatch.setenv("KUBETUNE_PARAMS", '{"lr": 0.1}')
    assert kubetune.trial_params() == {"lr": 0.1}


def test_float32_scalars_are_reported_without_their_rounding_noise() -> None:
    import numpy as np
    import torch

    assert float(np.float32(0.98)) == 0.9800000190734863  # what a plain float() gives
    assert _report.as_float(np.float32(0.98)) == 0.98
    assert _report.as_float(torch.tensor(0.98)) == 0.98
    assert _report.as_float(torch.tensor(1 / 3)) == 0.33333334  # every float32 digit kept
    assert _report.as_float(np.float64(0.9800000190734863)) == 0.9800000190734863  # 64-bit: as is
    assert _report.as_float(np.float32("nan")) != _report.as_float(np.float32("nan"))
    with pytest.raises(ValueError, match="acc: must be a number"):
        kubetune.report(step=1, acc="high")  # type: ignore[arg-type]


def test_points_go_out_in_few_batches_in_order(tmp_path: Path, as_trial: Any) -> None:
    store = new_store(tmp_path)
    backend = Counting(MetricsIntake(StoreTrials(store, job(False).spec)))
    server = serve(metrics=backend)  # type: ignore[arg-type]
    as_trial(server.address, NEVER_LINGER_OUT)  # only a full buffer or the flush sends
    try:
        with kubetune.reporting():
            for step in range(1, 2001):
                assert kubetune.report(step, acc=step / 2000) is False
        assert _report._reporter is not None and not _report._reporter.buffer
        assert store.curve("job-0") == [(s, s / 2000) for s in range(1, 2001)]
        sent = [s for batch in backend.batches for s in batch]
        assert sent == list(range(1, 2001))  # in order, each once
        # the first report waits for a verdict step; then full batches, then the flush's rest
        assert len(backend.batches) <= 2 + 2000 // _report.BATCH_POINTS
        assert max(len(b) for b in backend.batches) <= _report.BATCH_POINTS
    finally:
        server.stop(0)


def test_the_verdict_comes_back_on_the_report_that_crosses_a_rung(
    tmp_path: Path, as_trial: Any
) -> None:
    store = new_store(tmp_path, trials=3)
    for rival in ("job-1", "job-2"):  # below job-0 at rung 1, far above it at rung 3
        store.add_metrics(rival, [(1, {"acc": 0.1}), (3, {"acc": 0.9})])
    backend = Counting(MetricsIntake(StoreTrials(store, job(True).spec)))
    server = serve(metrics=backend)  # type: ignore[arg-type]
    as_trial(server.address, NEVER_LINGER_OUT)
    try:
        assert kubetune.report(1, acc=0.5) is False  # rung 1: judged (and kept) at once
        assert _report._reporter is not None and _report._reporter.verdict_step == 3
        assert kubetune.report(2, acc=0.5) is False  # no rung: stays in the buffer
        assert backend.batches == [[1]]
        assert kubetune.report(3, acc=0.2) is True  # rung 3: sent with step 2, verdict at once
        assert backend.batches == [[1], [2, 3]]
        assert store.trials()[0].state == "stopping"
    finally:
        server.stop(0)


class LosesTheFirstReply(MetricsServicer):
    """The real servicer, but the first batch's reply is lost after its commit."""

    lost = 0

    def ReportBatch(self, request: Any, context: Any) -> Any:
        reply = super().ReportBatch(request, context)
        if not self.lost:
            self.lost += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return reply


def test_a_batch_retried_after_unavailable_is_stored_once(tmp_path: Path, as_trial: Any) -> None:
    store = new_store(tmp_path)
    backend = Counting(MetricsIntake(StoreTrials(store, job(False).spec)))
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_MetricsServiceServicer_to_server(LosesTheFirstReply(backend), server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    as_trial(f"127.0.0.1:{port}")
    try:
        for step in range(1, 101):
            kubetune.report(step, acc=step / 100, loss=1.0)
        kubetune.flush(10)
        assert backend.batches[0] == backend.batches[1][: len(backend.batches[0])]  # resent
        assert store.metric_count() == 200  # 100 steps x 2 metrics: nothing twice
        assert store.curve("job-0") == [(s, s / 100) for s in range(1, 101)]
    finally:
        server.stop(0)


def test_reports_survive_an_outage_and_arrive_in_order(
    tmp_path: Path, as_trial: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    as_trial(f"127.0.0.1:{port}")
    monkeypatch.setattr(_report, "RETRY_SECONDS", 0.3)
    assert kubetune.report(step=1, acc=0.1) is False  # nobody listening: buffered
    assert kubetune.report(step=2, acc=0.2) is False
    assert _report._reporter is not None and len(_report._reporter.buffer) == 2
    store = new_store(tmp_path)
    server = serve(f"127.0.0.1:{port}", metrics=MetricsIntake(StoreTrials(store, job(False).spec)))
    try:
        assert kubetune.report(step=3, acc=0.3) is False
        wait_for(lambda: not _report._reporter.buffer, 30, "the buffered reports to arrive")  # type: ignore[union-attr]
        assert store.curve("job-0") == [(1, 0.1), (2, 0.2), (3, 0.3)]
    finally:
        server.stop(0)


def trainer(address: str, body: str) -> subprocess.Popen[str]:
    """A trainer process: `body` runs after 200 reports (steps 1-200) were made."""
    code = (
        "import kubetune\nfor step in range(1, 201):\n    kubetune.report(step, acc=step / 200)\n"
    )
    env = {
        **os.environ,
        "KUBETUNE_METRICS_ADDR": address,
        "KUBETUNE_TRIAL": "job-0",
        "KUBETUNE_TRIAL_TOKEN": "t0",
        "KUBETUNE_REPORT_LINGER_MS": NEVER_LINGER_OUT,
    }
    return subprocess.Popen(
        [sys.executable, "-c", code + textwrap.dedent(body)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_normal_exit_flushes(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    server = serve(metrics=MetricsIntake(StoreTrials(store, job(False).spec)))
    try:
        proc = trainer(server.address, "")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert store.curve("job-0") == [(s, s / 200) for s in range(1, 201)]
    finally:
        server.stop(0)


def test_sigterm_flushes_then_dies_of_sigterm(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    server = serve(metrics=MetricsIntake(StoreTrials(store, job(False).spec)))
    reported = tmp_path / "reported"
    try:
        proc = trainer(
            server.address,
            f"""
            import time
            from kubetune import _report
            assert len(_report._reporter.buffer) > 100  # lingering, not sent
            open({str(reported)!r}, "w").close()
            time.sleep(600)
            """,
        )
        wait_for(lambda: reported.exists() or proc.poll() is not None, 60, "the reports")
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM, err
        assert store.curve("job-0") == [(s, s / 200) for s in range(1, 201)]
    finally:
        server.stop(0)


def test_each_point_of_a_batch_gets_its_own_answer(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    server = serve(metrics=MetricsIntake(StoreTrials(store, job(True).spec)))
    stub = pb_grpc.MetricsServiceStub(grpc.insecure_channel(server.address))
    points = [
        pb.ReportPoint(step=1, metrics={"acc": 0.5}),
        pb.ReportPoint(step=2, metrics={"acc": math.nan}),
        pb.ReportPoint(step=10**10, metrics={"acc": 0.5}),
        pb.ReportPoint(step=4, metrics={"acc": 0.7}),
    ]
    try:
        reply = stub.ReportBatch(pb.ReportBatchRequest(trial="job-0", token=b"t0", points=points))
        assert [(r.step, r.result) for r in reply.results] == [
            (1, "accepted"),
            (2, "non_finite"),
            (10**10, "invalid_argument"),
            (4, "accepted"),
        ]
        assert "step: must be between 0" in reply.results[2].message
        assert reply.verdict_step == 9 and not reply.should_stop  # the next rung
        assert store.curve("job-0") == [(1, 0.5), (4, 0.7)]
        for trial, token, result in (
            ("job-0", b"bad", "bad_token"),
            ("nope", b"t0", "unknown_trial"),
        ):
            reply = stub.ReportBatch(pb.ReportBatchRequest(trial=trial, token=token, points=points))
            assert {r.result for r in reply.results} == {result, "invalid_argument"}
        store.set_state("job-0", "succeeded")
        reply = stub.ReportBatch(
            pb.ReportBatchRequest(trial="job-0", token=b"t0", points=points[:1])
        )
        assert reply.results[0].result == "trial_ended"
        too_many = pb.ReportBatchRequest(trial="job-0", token=b"t0", points=points[:1] * 1001)
        with pytest.raises(grpc.RpcError) as info:
            stub.ReportBatch(too_many)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "points: at most 1000 per batch" in info.value.details()
    finally:
        server.stop(0)


class OlderServer(pb_grpc.MetricsServiceServicer):
    """A server from before batches: only the unary Report."""

    def __init__(self, backend: MetricsIntake) -> None:
        self.servicer = MetricsServicer(backend)

    def Report(self, request: Any, context: Any) -> Any:
        return self.servicer.Report(request, context)


def test_an_older_server_gets_one_call_per_point(tmp_path: Path, as_trial: Any) -> None:
    store = new_store(tmp_path)
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_MetricsServiceServicer_to_server(
        OlderServer(MetricsIntake(StoreTrials(store, job(False).spec))), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    as_trial(f"127.0.0.1:{port}")
    try:
        for step in range(1, 21):
            kubetune.report(step, acc=step / 20)
        kubetune.flush(10)
        assert store.curve("job-0") == [(s, s / 20) for s in range(1, 21)]
    finally:
        server.stop(0)
