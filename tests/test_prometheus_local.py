"""Prometheus on one machine: `kubetune run` serves /metrics (a real Prometheus scrapes it), and
a trainer that only serves Prometheus metrics is tuned with ASHA by the runner's pull collector."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubetune.local import LocalRunner
from kubetune.spec import TuningJob
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT
from .prometheus import RULES, Prometheus, needs_prometheus
from .test_local_run import TRAINER_DIR, kubetune
from .waiting import free_port, wait_for

PROM_TRAINER = ROOT / "tests" / "data" / "prom_trainer.py"
SCRIPTED = ROOT / "tests" / "data" / "scripted_trainer.py"


def job_doc(name: str, argv: list[str], **spec: Any) -> dict[str, Any]:
    base = {
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parameters": [{"name": "quality", "type": "float", "min": 0.1, "max": 1.0}],
        "algorithm": {"name": "random", "seed": 3},
        "maxTrials": 4,
        "parallelism": 2,
    }
    container = {"name": "trainer", "image": "any", "command": argv[:2], "args": argv[2:]}
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {**base, **spec, "trialTemplate": {"spec": {"containers": [container]}}},
    }


def scraped_asha_job(name: str, interval: str = "100ms") -> dict[str, Any]:
    return job_doc(
        name,
        ["python", str(PROM_TRAINER), "--quality=${params.quality}", "--epochs=${params.epochs}"],
        objective={
            "metric": "val_accuracy",
            "direction": "maximize",
            "additionalMetrics": ["val_loss"],
        },
        earlyStopping={"name": "asha", "settings": {"reductionFactor": 3}},
        resource={"name": "epochs", "min": 1, "max": 9},
        maxTrials=6,
        metricsCollector={"kind": "prometheus", "interval": interval},
    )


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_trainer_that_only_serves_prometheus_metrics_is_tuned_with_asha(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, scraped_asha_job("scraped"))
    run = kubetune("run", str(path), "--workdir", str(tmp_path / "wd"), "--json")
    assert run.returncode == 0, run.stderr
    listed = kubetune("trials", "scraped", "--workdir", str(tmp_path / "wd"), "--json")
    trials = json.loads(listed.stdout)
    assert len(trials) == 6
    stopped = [t for t in trials if t["state"] == "Stopped"]
    assert stopped and all("early stopping" in t["reason"] for t in stopped)
    for t in trials:  # every epoch was scraped (the trainer waits for it), none twice
        steps = [p["step"] for p in t["curve"]]
        assert steps == list(range(1, len(steps) + 1)), t
        q = t["params"]["quality"]
        assert t["curve"][0]["value"] == q * 0.5
        assert abs(t["metrics"]["val_loss"] - (1 - t["metrics"]["val_accuracy"])) < 1e-9
    finished = [t for t in trials if t["state"] == "Succeeded"]
    assert all(len(t["curve"]) == 9 for t in finished)
    best = json.loads(
        kubetune("best", "scraped", "--workdir", str(tmp_path / "wd"), "--json").stdout
    )
    assert best["params"]["quality"] == max(t["params"]["quality"] for t in finished)


def test_nan_from_a_scraped_trainer_is_a_failed_measurement_not_a_value(tmp_path: Path) -> None:
    doc = job_doc(
        "nan",
        ["python", str(PROM_TRAINER), "--quality=${params.quality}", "--epochs=3", "--nan-at=2"],
        maxTrials=1,
        parallelism=1,
        metricsCollector={"kind": "prometheus", "interval": "100ms"},
    )
    run = kubetune("run", str(write(tmp_path, doc)), "--workdir", str(tmp_path / "wd"), "--json")
    assert run.returncode == 0, run.stderr
    (trial,) = json.loads(
        kubetune("trials", "nan", "--workdir", str(tmp_path / "wd"), "--json").stdout
    )
    assert [p["step"] for p in trial["curve"]] == [1, 3]


def test_run_serves_its_metrics_while_it_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    argv = ["python", str(SCRIPTED), "--x=${params.quality}", "--steps=2", f"--wait-file={gate}"]
    doc = job_doc("served", argv, maxTrials=1, parallelism=1)
    doc["spec"]["objective"]["metric"] = "score"
    port = free_port()
    where = ["--workdir", str(tmp_path / "wd"), "--metrics-port", str(port)]
    run = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "run", str(write(tmp_path, doc)), "--json", *where],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def running() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return False
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "kubetune_trials" and s.labels["state"] == "running":
                        return s.value == 1 and s.labels == {
                            "namespace": "local",
                            "tuningjob": "served",
                            "state": "running",
                        }
            return False

        wait_for(running, 120, "the running trial in /metrics")
        gate.touch()
        assert run.wait(120) == 0
    finally:
        run.kill()
        run.wait()


@needs_prometheus
def test_prometheus_scrapes_a_local_run_to_the_end(tmp_path: Path) -> None:
    doc = job_doc(
        "promjob",
        ["python", "train.py", "--units=16", "--epochs=${params.epochs}", "--lr=${params.lr}"],
        parameters=[{"name": "lr", "type": "float", "min": 1e-3, "max": 0.3, "scale": "log"}],
        earlyStopping={"name": "asha", "settings": {"reductionFactor": 3}},
        resource={"name": "epochs", "min": 1, "max": 9},
        maxTrials=6,
    )
    doc["spec"]["trialTemplate"]["local"] = {"workingDir": str(TRAINER_DIR)}
    runner = LocalRunner(TuningJob.parse(doc), tmp_path, tmp_path / "wd")
    endpoint = runner.telemetry.serve("127.0.0.1", 0)
    target = f"127.0.0.1:{endpoint.port}"
    try:
        with Prometheus(tmp_path, {"kubetune-run": [target]}, [RULES]) as prom:
            wait_for(lambda: prom.value('up{job="kubetune-run"}') == 1, 60, "the target up")
            result = runner.run()
            assert result.succeeded
            job = 'tuningjob="promjob", namespace="local"'
            prom.wait_value(f"sum(kubetune_trials_finished_total{{{job}}})", 6)
            best = json.loads(
                kubetune("best", "promjob", "--workdir", str(tmp_path / "wd"), "--json").stdout
            )
            assert prom.value(f"kubetune_best_objective{{{job}}}") == best["objective"]
            assert prom.value(f'kubetune_trials{{{job}, state="running"}}') == 0
            assert prom.value('sum(kubetune_metric_reports_total{result="accepted"})') >= 6  # type: ignore[operator]
            assert prom.value("sum(kubetune_suggest_duration_seconds_count)") >= 1  # type: ignore[operator]
            assert prom.value("sum(kubetune_trial_duration_seconds_count)") == 6
            decisions = prom.value("sum(kubetune_early_stop_decisions_total)")
            assert decisions is not None and decisions >= 1
            rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
            assert len(rules) == 5 and all(r["health"] == "ok" for r in rules), rules
    finally:
        endpoint.close()
