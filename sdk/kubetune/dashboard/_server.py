"""The dashboard's web server (aiohttp): read-only pages and server-sent event streams.

Routes: `/` (jobs), `/jobs/NAME`, `/jobs/NAME/trials/TRIAL` serve the one-page app;
`/api/jobs/stream`, `/api/jobs/NAME/stream[?trial=T]` and `/api/jobs/NAME/trials/T/logs` push
changes; `/api/jobs/NAME` is a job's snapshot as JSON; `/healthz` answers probes. Only GET and
HEAD exist. Every response carries a strict Content-Security-Policy; assets come from the
package.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response

from ..client import Client, ClientError, NotFound
from ._data import read_job
from ._feed import Feeds, Message

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
LOG_STREAMS = 32  # trials' logs followed at once, server-wide
LOG_BACKLOG = 2000  # a log's lines sent when a page starts following it
FEEDS: web.AppKey[Feeds] = web.AppKey("feeds", Feeds)
CLIENT: web.AppKey[Client] = web.AppKey("client", Client)
LOGS: web.AppKey[asyncio.Semaphore] = web.AppKey("logs", asyncio.Semaphore)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def static_dir() -> Path:
    return Path(str(resources.files("kubetune.dashboard") / "static"))


def make_app(client: Client, interval: float = 0.4) -> web.Application:
    """The dashboard for the jobs `client` sees; feeds poll it every `interval` seconds."""
    app = web.Application(middlewares=[_guard])
    app[CLIENT] = client
    app[LOGS] = asyncio.Semaphore(LOG_STREAMS)

    async def start(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        app[FEEDS] = Feeds(client, loop, interval)
        loop.run_in_executor(None, _preload)

    app.on_startup.append(start)
    app.router.add_get("/", _page)
    app.router.add_get("/jobs/{job}", _job_page)
    app.router.add_get("/jobs/{job}/trials/{trial}", _trial_page)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_get("/api/jobs/stream", _jobs_stream)
    app.router.add_get("/api/jobs/{job}", _job_json)
    app.router.add_get("/api/jobs/{job}/stream", _job_stream)
    app.router.add_get("/api/jobs/{job}/trials/{trial}/logs", _logs_stream)
    app.router.add_static("/static/", static_dir(), append_version=False)
    return app


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; a page for every error, never a traceback."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_page(exc.status, exc.reason, exc.text if exc.status != 404 else None)
    except ClientError as exc:
        response = error_page(503, "Service Unavailable", str(exc))
    except Exception:  # logged; the page only says it failed
        request.app.logger.exception("dashboard request %s failed", request.path)
        response = error_page(500, "Internal Server Error", "the dashboard failed: see its log")
    if not response.prepared:
        response.headers.update(HEADERS)
    return response


def error_page(status: int, title: str, detail: str | None) -> web.Response:
    text = detail or "There is no such page."
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{status} {html.escape(title)} - kubetune</title>"
        '<link rel="stylesheet" href="/static/app.css">'
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head><body class="error">'
        f'<main><h1>{status} {html.escape(title)}</h1><p class="detail">{html.escape(text)}</p>'
        '<p><a href="/">All jobs</a></p></main></body></html>'
    )
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers.update(HEADERS)
    return response


def _preload() -> None:
    """Import scikit-learn now, not while the first page waits for its job."""
    import sklearn.ensemble  # noqa: F401


@functools.cache
def _index() -> str:
    return (static_dir() / "index.html").read_text()


def _app_page() -> web.Response:
    return web.Response(text=_index(), content_type="text/html")


async def _page(request: web.Request) -> web.StreamResponse:
    return _app_page()


async def _blocking(call: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def _job_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["job"]
    try:
        await _blocking(lambda: request.app[CLIENT].revision(name))  # cheap: no trials read
    except NotFound as exc:
        return error_page(404, "Not Found", str(exc))
    except ClientError:
        pass  # the page says the API is unreachable and keeps trying
    else:
        request.app[FEEDS].job(name).touch()  # its snapshot is read while the page loads
    return _app_page()


async def _trial_page(request: web.Request) -> web.StreamResponse:
    job, trial = request.match_info["job"], request.match_info["trial"]
    feed = request.app[FEEDS].job(job)
    names = feed.names()
    try:
        if names is None:
            names = {t.name for t in await _blocking(lambda: request.app[CLIENT].trials(job))}
    except NotFound as exc:
        return error_page(404, "Not Found", str(exc))
    except ClientError:
        return _app_page()
    if trial not in names:
        return error_page(404, "Not Found", f"job {job!r} has no trial {trial!r}")
    feed.touch()
    return _app_page()


async def _favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/static/favicon.svg")


async def _health(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok\n")


async def _job_json(request: web.Request) -> web.StreamResponse:
    client, name = request.app[CLIENT], request.match_info["job"]
    try:
        payload = await _blocking(lambda: read_job(client, name))
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return web.json_response(payload, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


async def _jobs_stream(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEEDS].jobs
    return await _stream(request, feed.subscribe, feed.unsubscribe, lambda m: m)


async def _job_stream(request: web.Request) -> web.StreamResponse:
    feeds = request.app[FEEDS]
    feed = feeds.job(request.match_info["job"])
    trial = request.query.get("trial")
    pick = (lambda m: _for_trial(m, trial)) if trial else (lambda m: m)
    try:
        return await _stream(request, feed.subscribe, feed.unsubscribe, pick)
    finally:
        feeds.forget_idle()


def _for_trial(message: Message, trial: str) -> Message | None:
    """A job message cut down to one trial and the trials it continues (its lineage)."""
    event, data = message.event, message.data
    if event not in ("snapshot", "update"):
        return message
    rows = data.get("trials") or []
    if event == "update" and not any(r["name"] == trial for r in rows) and "job" not in data:
        return None
    kept = {k: v for k, v in data.items() if k != "importance"}
    kept["trials"] = _lineage(rows, trial) if event == "snapshot" else rows
    return Message(event, kept)


def _lineage(rows: list[dict[str, Any]], trial: str) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in rows}
    chain: list[dict[str, Any]] = []
    at = by_name.get(trial)
    while at is not None and len(chain) <= len(rows):
        chain.append(at)
        at = by_name.get(at["continues"]) if at["continues"] else None
    followers = [r for r in rows if r["continues"] == trial]
    return chain[::-1] + followers


async def _stream(
    request: web.Request,
    subscribe: Callable[[], asyncio.Queue[Message]],
    unsubscribe: Callable[[asyncio.Queue[Message]], None],
    pick: Callable[[Message], Message | None],
) -> web.StreamResponse:
    queue = subscribe()
    try:
        async with sse_response(request, headers=HEADERS) as response:
            while response.is_connected():
                message = pick(await queue.get())
                if message is not None:
                    await response.send(message.text, event=message.event)
        return response
    finally:
        unsubscribe(queue)


async def _logs_stream(request: web.Request) -> web.StreamResponse:
    client = request.app[CLIENT]
    job, trial = request.match_info["job"], request.match_info["trial"]
    limit = request.app[LOGS]
    if limit.locked():
        raise web.HTTPServiceUnavailable(text=f"{LOG_STREAMS} logs are followed already")
    async with limit, sse_response(request, headers=HEADERS) as response:
        async for message in _follow(client, job, trial):
            await response.send(message.text, event=message.event)
            if not response.is_connected():
                break
        return response


async def _follow(client: Client, job: str, trial: str) -> AsyncIterator[Message]:
    """The trial's log: batches of the lines read since the last one (at most LOG_BACKLOG,
    the newest), then `end` or a `problem`. The reading thread ends with the log, or at its
    next line once the page has gone."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Message] = asyncio.Queue()
    stop = threading.Event()

    def put(message: Message) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, message)

    def read() -> None:
        try:
            for line in client.logs(trial, follow=True, job=job):
                if stop.is_set():
                    return
                put(Message("line", {"line": line.rstrip("\n")}))
            put(Message("end", {}))
        except ClientError as exc:
            put(Message("problem", {"message": str(exc)}))

    threading.Thread(target=read, daemon=True, name=f"logs {trial}").start()
    try:
        while True:
            lines: list[str] = []
            message = await queue.get()
            while message.event == "line":
                lines.append(message.data["line"])
                if queue.empty():
                    break
                message = queue.get_nowait()
            if lines:
                skipped = max(0, len(lines) - LOG_BACKLOG)
                yield Message("lines", {"lines": lines[skipped:], "skipped": skipped})
            if message.event != "line":
                yield message
                return
    finally:
        stop.set()


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
