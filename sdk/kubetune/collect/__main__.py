"""The file collector's sidecar in a trial pod (a native sidecar the operator adds):

    python -m kubetune.collect --path /var/log/katib/metrics.log [--format json]
        [--step-metric epoch] [--filter REGEX]... METRIC...

It follows the file on the pod's shared emptyDir and reports each line's point over gRPC with the
trial's token (the trial env: KUBETUNE_METRICS_ADDR, KUBETUNE_TRIAL, KUBETUNE_TRIAL_TOKEN). When
the kubelet stops it (SIGTERM: the trial's container has ended) it reads the rest of the file,
delivers it and exits 0, so a trial never waits on it.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Hashable
from pathlib import Path

from .._report import _Reporter
from ..rpc.metrics import Point
from ._lines import LineReader
from ._tail import Tailer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune.collect", description=__doc__)
    parser.add_argument("--path", required=True, help="the metrics file")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--step-metric", help="the metric whose value is the step")
    parser.add_argument("--filter", action="append", default=[], help="a regular expression")
    parser.add_argument("metrics", nargs="+", metavar="METRIC", help="the metrics to take")
    args = parser.parse_args(argv)
    address = os.environ.get("KUBETUNE_METRICS_ADDR")
    if not address:
        print("kubetune.collect: KUBETUNE_METRICS_ADDR is not set", file=sys.stderr)
        return 2
    reporter = _Reporter(
        address, os.environ.get("KUBETUNE_TRIAL", ""), os.environ.get("KUBETUNE_TRIAL_TOKEN", "")
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())

    def send(_: Hashable, points: list[Point]) -> None:
        for p in points:
            reporter.report(p.step, {**p.metrics, **dict.fromkeys(p.invalid, math.nan)})

    tailer = Tailer(send, interval=0.2)
    reader = LineReader(args.metrics, args.step_metric, args.filter, args.format == "json")
    tailer.follow("trial", Path(args.path), reader)
    done.wait()
    tailer.drain("trial")
    tailer.close()
    reporter.close(10.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
