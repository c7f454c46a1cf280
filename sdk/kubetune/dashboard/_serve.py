"""Run the dashboard server until interrupted: bind, say where, optionally open a browser."""

from __future__ import annotations

import asyncio
import sys
import webbrowser
from collections.abc import Callable

from aiohttp import web

from ..client import Client
from ._server import is_loopback, make_app


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
        if on_ready is not None:
            on_ready(url)
        if open_browser:
            webbrowser.open(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
