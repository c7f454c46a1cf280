"""How long a trial's end takes to reach an open job page of the dashboard (local run).

A job of the real trainer runs (trials one after another); the job page is open in headless
chromium. For each trial, this script notes (a) when the state file first says the trial
succeeded, read every 10 ms, and (b) when the page's trials table first shows it Succeeded,
noted by a MutationObserver in the page (the same machine's clock). The difference is the
latency the issue bounds at 1 s.

    python benchmarks/dashboard_latency.py [--trials 6] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.browser import Dashboard, browser, new_tab  # noqa: E402
from tests.test_dashboard_local import write_job  # noqa: E402

WATCH = """() => {
  window.__seen = {};
  new MutationObserver(() => {
    for (const row of document.querySelectorAll('#trials tbody tr[data-trial]')) {
      const name = row.dataset.trial;
      if (!(name in window.__seen) && row.querySelector('.badge.Succeeded')) {
        window.__seen[name] = Date.now() / 1000;
      }
    }
  }).observe(document.body, {subtree: true, childList: true});
}"""


def succeeded(db: Path) -> dict[str, float]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT name FROM trials WHERE state = 'succeeded'").fetchall()
    except sqlite3.Error:
        return {}
    now = time.time()
    return {name: now for (name,) in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/dashboard_latency.json")
    args = parser.parse_args()
    from kubetune import Client

    with tempfile.TemporaryDirectory() as tmp:
        path = write_job(Path(tmp), "latency")
        doc = path.read_text().replace("maxTrials: 4", f"maxTrials: {args.trials}")
        path.write_text(doc.replace("parallelism: 2", "parallelism: 1"))
        client = Client(workdir=Path(tmp) / "runs")
        with Dashboard("--workdir", str(Path(tmp) / "runs")) as board, browser() as chromium:
            name = client.submit(path)
            tab = new_tab(chromium)
            tab.goto(f"{board.url}/jobs/{name}")
            tab.value(WATCH)
            stored: dict[str, float] = {}
            db = Path(tmp) / "runs" / name / "state.db"
            deadline = time.monotonic() + 600
            while len(stored) < args.trials and time.monotonic() < deadline:
                for trial, at in succeeded(db).items():
                    stored.setdefault(trial, at)
                time.sleep(0.01)
            tab.wait(f"() => Object.keys(window.__seen).length >= {args.trials}", timeout=30)
            shown = tab.value("() => window.__seen")
    lags = sorted(shown[t] - stored[t] for t in stored)
    result = {
        "trials": len(lags),
        "lag_s": [round(x, 3) for x in lags],
        "median_s": round(statistics.median(lags), 3),
        "max_s": round(max(lags), 3),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
