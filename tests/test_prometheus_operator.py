"""Prometheus with the operator, against the real control plane (tests/cluster): a real Prometheus scrapes the
operator's /metrics while it runs a pushed (gRPC) and a scraped (pull) job with ASHA; every
dashboard panel's query returns data; a broken trial endpoint is a condition, never a block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from .conftest import ROOT
from .harness import OBJECTIVE, Cluster, tuning_job, wait_for
from .prometheus import RULES, Prometheus, needs_prometheus
from .test_operator_e2e import asha_job
from .test_prometheus_local import PROM_TRAINER

DASHBOARD = ROOT / "charts" / "kubetune" / "files" / "grafana-dashboard.json"


def scraped_job(name: str, objective: str = "val_accuracy", **extra: Any) -> dict[str, Any]:
    """prom_trainer in pods: it serves on its pod IP, port 8000 (KUBETUNE_METRICS_PORT)."""
    container = {
        "name": "trainer",
        "image": "kubetune/prom-trainer:latest",
        "command": ["python", str(PROM_TRAINER)],
        "args": ["--host=$(POD_IP)", "--quality=${params.quality}", "--epochs=${params.epochs}"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    }
    spec = {
        "objective": {"metric": objective, "direction": "maximize"},
        "parameters": [{"name": "quality", "type": "float", "min": 0.1, "max": 1.0}],
        "algorithm": {"name": "random", "seed": 5},
        "earlyStopping": {"name": "asha", "settings": {"reductionFactor": 3}},
        "resource": {"name": "epochs", "min": 1, "max": 9},
        "maxTrials": 5,
        "parallelism": 2,
        "metricsCollector": {"kind": "prometheus", "port": 8000, "interval": "200ms"},
        **extra,
        "trialTemplate": {"spec": {"containers": [container]}},
    }
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def best_from_cli(name: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "best", name, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, with the dashboard's variables set."""
    dashboard = json.loads(DASHBOARD.read_text())
    values = {"$namespace": ".*", "$tuningjob": ".*", "$__rate_interval": "1m"}
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in values.items():
                expr = expr.replace(name, value)
            queries.append((panel["title"], expr))
    return queries


@needs_prometheus
def test_prometheus_sees_the_operator_run_both_kinds_of_job(
    cluster: Cluster, tmp_path: Path
) -> None:
    exporter = os.environ["KUBETUNE_EXPORTER_BIND"]
    targets = {"kubetune-operator-metrics": [exporter]}
    with (
        Prometheus(tmp_path, targets, [RULES]) as prom,
        KopfRunner(cluster.operator) as runner,
    ):
        wait_for(lambda: prom.value("up") == 1, 60, "the operator scraped")
        cluster.apply(asha_job("pushed"))
        cluster.apply(scraped_job("pulled"))
        cluster.wait_phase("pushed", "Succeeded")
        cluster.wait_phase("pulled", "Succeeded")
        for name, trials in (("pushed", 2), ("pulled", 5)):
            job = f'namespace="{cluster.namespace}", tuningjob="{name}"'
            prom.wait_value(f"sum(kubetune_trials_finished_total{{{job}}})", trials)
            prom.wait_value(f'kubetune_tuningjob_phase{{{job}, phase="Succeeded"}}', 1)
            best = best_from_cli(name)
            assert prom.value(f"kubetune_best_objective{{{job}}}") == best["objective"]
        empty = [(title, q) for title, q in panel_queries() if not prom.query(q)]
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        verbs = {r["metric"]["verb"] for r in prom.query("kubetune_kube_api_requests_total")}
        scrapes = prom.value('sum(kubetune_scrapes_total{result="ok"})')
    assert runner.exception is None, runner.output[-3000:]
    assert empty == [], "dashboard panels without data"
    assert all(r["health"] == "ok" for r in rules), rules
    assert {"create", "patch", "delete"} <= verbs
    assert scrapes is not None and scrapes >= 9
    trials = {n: t for n, t in cluster.objects("trials").items() if n.startswith("pulled-")}
    stopped = [t for t in trials.values() if t["status"]["phase"] == "Stopped"]
    assert stopped and all(" at rung " in t["status"]["message"] for t in stopped), stopped
    for name, t in trials.items():  # the trainer waits for each scrape: no epoch is missed
        steps = [p["step"] for p in t["status"]["curve"]]
        assert steps[0] == 1 and steps == sorted(set(steps)), name
        assert t["status"]["metrics"]["val_accuracy"] <= t["spec"]["params"]["quality"]


def test_a_trial_endpoint_without_the_objective_is_a_condition_and_the_job_ends(
    cluster: Cluster,
) -> None:
    doc = scraped_job("blind", objective="val_f1", maxTrials=1, parallelism=1)
    doc["spec"].pop("earlyStopping")
    doc["spec"]["resource"]["max"] = 2  # failing scrapes back off: keep the trainer's wait short
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(doc)
        wait_for(
            lambda: (
                (cluster.job("blind").get("status") or {}).get("phase") in ("Succeeded", "Failed")
            ),
            180,
            "the job to end",
        )
    assert runner.exception is None, runner.output[-3000:]
    trial = cluster.objects("trials")["blind-0"]
    (collected,) = [c for c in trial["status"]["conditions"] if c["type"] == "MetricsCollected"]
    assert collected["status"] == "False" and collected["reason"] == "ScrapeMissingObjective"
    assert "'val_f1'" in collected["message"]
    events = cluster.objects("events", "").values()
    assert any(e["reason"] == "MetricsScrapeFailed" and "val_f1" in e["message"] for e in events)
    assert "no trial reported the objective" in cluster.job("blind")["status"]["message"]


def test_the_default_collector_is_grpc_and_pods_of_scraped_jobs_are_labelled() -> None:
    from kubetune_operator.builders import METRICS_PORT_NAME, SCRAPED_LABEL, build_trial_pod

    trial = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "Trial",
        "metadata": {"name": "x-0", "namespace": "default", "uid": "u"},
        "spec": {"job": "x", "index": 0, "params": {"quality": 0.5, "epochs": 3}},
    }
    for doc, scraped in (
        (scraped_job("x"), True),
        (
            tuning_job(
                "x",
                {
                    "objective": OBJECTIVE,
                    "parameters": [{"name": "quality", "type": "float", "min": 0.1, "max": 1.0}],
                    "algorithm": {"name": "random"},
                    "resource": {"name": "epochs", "min": 1, "max": 3},
                },
                [],
            ),
            False,
        ),
    ):
        pod = build_trial_pod(doc, trial, "ops:9090")
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        ports = pod["spec"]["containers"][0].get("ports", [])
        assert (SCRAPED_LABEL in pod["metadata"]["labels"]) is scraped
        assert ("KUBETUNE_METRICS_PORT" in env) is scraped
        assert ([p["name"] for p in ports] == [METRICS_PORT_NAME]) is scraped
