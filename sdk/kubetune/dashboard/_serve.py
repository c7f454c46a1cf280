"""Run the dashboard server until interrupted: bind, say where, optionally open a browser.

Reading a job of 10,000 trials makes some hundred thousand short-lived objects; with Python's
default collector thresholds half of that time went to garbage collection, so the server
freezes what it imported and collects less often (GC_THRESHOLD)."""

from __future__ import annotations

import asyncio
import gc
import sys
import webbrowser
from collections.abc import Callable

from aiohttp import web

from ..client import Client
from ._server import is_loopback, make_app

GC_THRESHOLD = (50_000, 20, 100)  # allocations before a young collection; the older ones


def serve(
    client: Client,
    host: str = "127.0.0.1",
    port: int = 8686,
    open_browser: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard of `client`'s jobs until Ctrl-C; `on_ready` gets the URL."""
    if not is_loopback(host):
        print(
            f"kubetune dashboard: warning: listening on {host}, not loopback: anyone who can "
            "reach this port sees every job, parameter and log it shows (there is no login)",
            file=sys.stderr,
            flush=True,
        )
    asyncio.run(_serve(client, host, port, open_browser, on_ready))


async def _serve(
    client: Client,
    host: str,
    port: int,
    open_browser: bool,
    on_ready: Callable[[str], None] | None,
) -> None:
    runner = web.AppRunner(make_app(client), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        url = f"http://{shown}:{bound[1]}/"
        gc.freeze()  # what is loaded by now lives as long as the server
        gc.set_threshold(*GC_THRESHOLD)
        if on_ready is not None:
            on_ready(url)
        if open_browser:
            webbrowser.open(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
