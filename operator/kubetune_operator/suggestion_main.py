"""`kubetune-suggestion`: the SuggestionService as its own process (its own Deployment).

Stateless: every request carries the spec and the trials, so any number of replicas can serve.
Serves gRPC health checking; exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from kubetune.rpc.server import serve

log = logging.getLogger("kubetune.suggestion")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetune-suggestion", description=__doc__)
    parser.add_argument(
        "--address",
        default=os.environ.get("KUBETUNE_SUGGESTION_ADDRESS", "0.0.0.0:50052"),
        help="host:port to listen on (env KUBETUNE_SUGGESTION_ADDRESS)",
    )
    parser.add_argument("--workers", type=int, default=int(os.environ.get("KUBETUNE_WORKERS", "8")))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(args.address, suggestions=True, workers=args.workers)
    log.info("SuggestionService listening on %s", server.address)
    print(f"listening on {server.address}", flush=True)
    stop.wait()
    log.info("shutting down")
    server.stop(grace=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
