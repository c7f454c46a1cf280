"""`kubetune-suggestion`: the SuggestionService as its own process (its own Deployment).

Stateless: every request carries the spec and the trials, so any number of replicas can serve.
Serves gRPC health checking; exits cleanly on SIGTERM/SIGINT. Off loopback it requires a shared
token (a file, mounted from a Secret that the operator mounts too) on every call.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from kubetune.rpc.server import serve

log = logging.getLogger("kubetune.suggestion")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetune-suggestion", description=__doc__)
    parser.add_argument(
        "--address",
        default=os.environ.get("KUBETUNE_SUGGESTION_BIND", "0.0.0.0:50052"),
        help="host:port to listen on (env KUBETUNE_SUGGESTION_BIND; the operator's "
        "KUBETUNE_SUGGESTION_ADDRESS is where it dials this service)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("KUBETUNE_SUGGESTION_WORKERS", "8")),
        help="gRPC threads (env KUBETUNE_SUGGESTION_WORKERS)",
    )
    parser.add_argument(
        "--token-file",
        default=os.environ.get("KUBETUNE_SUGGESTION_TOKEN_FILE"),
        help="file holding the shared token callers must present "
        "(env KUBETUNE_SUGGESTION_TOKEN_FILE); required unless bound to loopback",
    )
    args = parser.parse_args(argv)
    token = read_token(args.token_file) if args.token_file else None
    if token is None and not is_loopback(args.address):
        parser.error(f"--token-file: required to listen on {args.address} (not loopback)")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(args.address, suggestions=True, workers=args.workers, suggestion_token=token)
    log.info("SuggestionService listening on %s", server.address)
    print(f"listening on {server.address}", flush=True)
    stop.wait()
    log.info("shutting down")
    server.stop(grace=5.0)
    return 0


def read_token(path: str) -> str:
    token = Path(path).read_text().strip()
    if not token:
        raise SystemExit(f"{path}: the suggestion token file is empty")
    return token


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


if __name__ == "__main__":
    sys.exit(main())
