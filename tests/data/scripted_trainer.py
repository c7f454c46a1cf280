"""A trainer whose behaviour the runner tests choose: how long it runs, what it leaves behind,
how it takes SIGTERM. It reports through the real `kubetune.report` over gRPC.

With --acked, the trainer flushes at every even step and at the end (odd steps go out with the
batch sender's linger), and after each flush that emptied the buffer appends the steps reported
so far to --acked as "trial step": a test can check that no acknowledged report was lost.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubetune
from kubetune import _report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    parser.add_argument(
        "--ignore-term", action="store_true", help="ignore SIGTERM and kubetune's stop verdict"
    )
    parser.add_argument("--child", action="store_true", help="leave a `sleep` child behind")
    parser.add_argument("--escape", help="a setsid child reports once this file exists")
    parser.add_argument("--wait-file", help="before exiting, wait until this file exists")
    parser.add_argument("--spew", type=int, default=0, help="bytes of output to write")
    parser.add_argument("--acked", help="append acknowledged reports here")
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument(
        "--linger", type=float, default=0.0, help="seconds to keep going once told to stop"
    )
    argv: list[str] = []
    for arg in sys.argv[1:]:  # --extra="--child --escape=1": flags chosen by a parameter
        argv += shlex.split(arg.removeprefix("--extra=")) if arg.startswith("--extra=") else [arg]
    args = parser.parse_args(argv)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.linger:

        def linger(*_: object) -> None:
            time.sleep(args.linger)
            sys.exit(0)

        signal.signal(signal.SIGTERM, linger)
    if args.child:
        subprocess.Popen(["sleep", "600"])
    trial = os.environ.get("KUBETUNE_TRIAL", "")
    if args.escape is not None:
        code = (
            "import os, time, kubetune\n"
            f"while not os.path.exists({args.escape!r}): time.sleep(0.05)\n"
            "kubetune.report(99, score=123.0)"
        )
        subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    line = b"x" * 1023 + b"\n"
    for _ in range(args.spew // len(line)):
        sys.stdout.buffer.write(line)
    sys.stdout.flush()
    acked = 0
    for step in range(1, args.steps + 1):
        time.sleep(args.step_seconds)
        stop = kubetune.report(step, score=args.x * step)
        if args.acked and (step % 2 == 0 or step == args.steps):
            stop = kubetune.flush(_report.RETRY_SECONDS) or stop
            reporter = _report._reporter
            if reporter is not None and not reporter.buffer:
                with open(args.acked, "a") as f:
                    f.writelines(f"{trial} {s}\n" for s in range(acked + 1, step + 1))
                acked = step
        if stop and not args.ignore_term:
            time.sleep(args.linger)
            return 0
    if args.wait_file:
        while not Path(args.wait_file).exists():
            time.sleep(0.05)
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
