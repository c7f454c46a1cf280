"""`python -m tests.cluster up`: start the test control plane and print its admin kubeconfig;
it stays up until `python -m tests.cluster down` or Ctrl-C. Needs root (network namespaces)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from .control_plane import ControlPlane, ControlPlaneError
from .network import RUN

UP = RUN / "up"  # one file per `up` process: its pid, then its kubeconfig


def up() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        plane = ControlPlane().start()
    except ControlPlaneError as exc:
        print(exc, file=sys.stderr)
        return 1
    crds = Path(__file__).resolve().parent.parent.parent / "manifests" / "crds"
    UP.mkdir(parents=True, exist_ok=True)
    record = UP / str(os.getpid())
    record.write_text(f"{plane.admin}\n")
    print(f"export KUBECONFIG={plane.admin}", flush=True)
    print(f"# the CRDs: kubectl apply -f {crds}", file=sys.stderr)
    print("# stop with: python -m tests.cluster down (or Ctrl-C)", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        plane.stop()
        plane.remove()
        record.unlink(missing_ok=True)
    return 0


def down() -> int:
    records = list(UP.glob("*")) if UP.exists() else []
    if not records:
        print("no control plane started with `python -m tests.cluster up` is running")
        return 0
    for record in records:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(record.name), signal.SIGTERM)
            print(f"stopping the control plane of process {record.name}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args()
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
