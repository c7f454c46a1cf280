"""The dashboard with 10,000 trials in headless chromium, against optuna-dashboard in the same run.

A finished local job of N trials (the digits example's five parameters, a synthetic objective,
ASHA-like curves of 1 to 9 steps) is written straight into a state.db; the same trials, with
the same parameters, values and intermediate values, go into an Optuna study in SQLite.

- kubetune: after the jobs page has been opened once, the time from navigation to the job page
  being interactive (every chart in view drawn, the trials table filled: the page's own
  `kubetune-ready` performance mark), then the time until a hover on a history point shows
  its tooltip. The first load reads the job (cold); later ones find its feed still lingering.
  The server's resident memory after each load, and after the pages have gone.
- optuna-dashboard: the time from navigation to its study page's history plot holding points
  (plotly's scatter points in the DOM) with the network idle.

    python benchmarks/dashboard_scale.py [--trials 10000] [--loads 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.browser import CHROMIUM_FLAGS  # noqa: E402
from tests.waiting import free_port  # noqa: E402

EXAMPLE = ROOT / "manifests" / "examples" / "digits-bayesian.yaml"


def synthetic(params: dict[str, Any]) -> float:
    """An accuracy-like objective of the digits space, with noise."""
    lr = math.log10(params["lr"])
    score = 0.97 - 0.05 * (lr + 1.8) ** 2 - 0.1 * params["dropout"] ** 2
    score -= {"sgd": 0.05, "adam": 0.0, "adamw": 0.01}[params["optimizer"]]
    return max(0.05, min(0.995, score + random.gauss(0, 0.02)))


def trials(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    random.seed(7)
    out = []
    for _ in range(n):
        params = {
            "lr": 10 ** rng.uniform(-4, math.log10(0.3)),
            "hidden_layers": rng.randint(1, 4),
            "units": round(2 ** rng.uniform(4, 8)),
            "dropout": rng.uniform(0, 0.5),
            "optimizer": rng.choice(["sgd", "adam", "adamw"]),
        }
        final = synthetic(params)
        steps = rng.choice([1, 3, 9, 9])
        curve = [(s, final - 0.3 * math.exp(-s / 2) * (1 - s / 10)) for s in range(1, steps + 1)]
        out.append({"params": params, "curve": curve, "stopped": steps < 9})
    return out


def write_local(workdir: Path, rows: list[dict[str, Any]]) -> str:
    from kubetune.local._store import Store
    from kubetune.spec import TrialState

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["maxTrials"] = len(rows)
    store = Store(workdir / "state.db", "val_accuracy")
    store.init_job(doc["metadata"]["name"], doc["spec"])
    now = time.time() - 3600
    for i, row in enumerate(rows):
        name = f"{doc['metadata']['name']}-{i}"
        store.add_trial(name, i, row["params"], 9.0, "t")
        store.set_state(name, TrialState.running, started=now + i * 0.3, attempts=1)
        store.add_metrics(name, [(s, {"val_accuracy": v}) for s, v in row["curve"]])
        state = TrialState.stopped if row["stopped"] else TrialState.succeeded
        store.set_state(name, state, finished=now + i * 0.3 + 5, exit_code=0)
    store.finish_job("MaxTrialsReached", True, f"all {len(rows)} trials finished")
    store.close()
    return str(doc["metadata"]["name"])


def write_optuna(path: Path, rows: list[dict[str, Any]]) -> str:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {
        "lr": FloatDistribution(1e-4, 0.3, log=True),
        "hidden_layers": IntDistribution(1, 4),
        "units": IntDistribution(16, 256, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
    }
    url = f"sqlite:///{path}"
    study = optuna.create_study(study_name="digits", storage=url, direction="maximize")
    made = []
    for row in rows:
        state = (
            optuna.trial.TrialState.PRUNED if row["stopped"] else optuna.trial.TrialState.COMPLETE
        )
        made.append(
            optuna.trial.create_trial(
                params=row["params"],
                distributions=space,
                value=row["curve"][-1][1],
                intermediate_values=dict(row["curve"]),
                state=state,
            )
        )
    study.add_trials(made)
    return url


def server(command: list[str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{command[0]} did not answer at {url}")


def rss_mib(proc: subprocess.Popen[bytes]) -> float:
    return float(psutil.Process(proc.pid).memory_info().rss) / 2**20


def kubetune_load(browser: Any, url: str) -> tuple[float, float]:
    """Seconds from navigation to interactive (the page's own mark), and to a hover's tooltip
    (measured here, so it includes Playwright's round trips)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    started = time.monotonic()
    page.goto(url, wait_until="commit")
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    ready = page.evaluate("() => performance.getEntriesByName('kubetune-ready')[0].startTime")
    ready /= 1000  # seconds from navigation start to interactive, as the page measured it
    at = page.evaluate(
        "() => { const c = echarts.getInstanceByDom(document.getElementById('history'));"
        " const s = c.getOption().series[0]; return c.convertToPixel({seriesIndex: 0}, s.data[0]); }"
    )
    box = page.locator("#history").bounding_box()
    page.mouse.move(box["x"] + at[0], box["y"] + at[1])
    page.wait_for_selector(".tooltip-title", timeout=30_000)
    hovered = time.monotonic() - started
    assert not errors, errors
    page.close()
    return ready, hovered


def optuna_load(browser: Any, url: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    started = time.monotonic()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=300_000)
    page.wait_for_load_state("networkidle")
    took = time.monotonic() - started
    page.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/dashboard_scale.json")
    parser.add_argument("--no-peer", action="store_true", help="skip optuna-dashboard")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows = trials(args.trials)
    result: dict[str, Any] = {"trials": args.trials, "loads": args.loads}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        workdir = Path(tmp) / "job"
        started = time.monotonic()
        name = write_local(workdir, rows)
        result["write_local_s"] = round(time.monotonic() - started, 1)
        port = free_port()
        board = [sys.executable, "-m", "kubetune.cli", "dashboard", "--workdir", str(workdir)]
        proc = server([*board, f"--port={port}"], f"http://127.0.0.1:{port}/healthz")
        try:
            warm_up = browser.new_page()  # the jobs page first, as a person would come in
            warm_up.goto(f"http://127.0.0.1:{port}/")
            warm_up.wait_for_selector("body[data-ready='1']")
            warm_up.close()
            loads, hovers, memory = [], [], []
            for _ in range(args.loads):
                ready, hovered = kubetune_load(browser, f"http://127.0.0.1:{port}/jobs/{name}")
                loads.append(ready)
                hovers.append(hovered)
                memory.append(rss_mib(proc))
            time.sleep(35)  # past LINGER: the feed drops its snapshot
            result["kubetune"] = {
                "ready_s": [round(x, 2) for x in loads],
                "ready_first_s": round(loads[0], 2),  # the job's first read in this server
                "ready_median_s": round(statistics.median(loads), 2),
                "hover_median_s": round(statistics.median(hovers), 2),
                "server_rss_mib_after_each_load": [round(x) for x in memory],
                "server_rss_mib_idle": round(rss_mib(proc)),
            }
        finally:
            proc.terminate()
            proc.wait()
        try:
            import optuna_dashboard  # noqa: F401
        except ImportError:
            result["optuna_dashboard"] = "not installed (pip install optuna-dashboard)"
        if args.no_peer or "optuna_dashboard" in result:
            pass
        else:
            storage = write_optuna(Path(tmp) / "optuna.db", rows)
            port = free_port()
            command = [
                str(Path(sys.executable).parent / "optuna-dashboard"),
                storage,
                f"--port={port}",
            ]
            proc = server(command, f"http://127.0.0.1:{port}/")
            try:
                took = [
                    optuna_load(browser, f"http://127.0.0.1:{port}/dashboard/studies/1")
                    for _ in range(args.loads)
                ]
                result["optuna_dashboard"] = {
                    "history_plot_s": [round(x, 2) for x in took],
                    "history_plot_median_s": round(statistics.median(took), 2),
                    "server_rss_mib": round(rss_mib(proc)),
                }
            finally:
                proc.terminate()
                proc.wait()
        browser.close()
    kt = result["kubetune"]["ready_median_s"]
    peer = result.get("optuna_dashboard")
    if isinstance(peer, dict):
        result["optuna_over_kubetune"] = round(peer["history_plot_median_s"] / kt, 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
