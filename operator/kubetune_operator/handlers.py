"""kopf handlers of the kubetune operator: thin, they only feed the cache and wake the controller.

Run with `kubetune-operator` (or `kopf run -m kubetune_operator.handlers`, which reads the
settings from the environment). The settings and the `Runtime` live in kopf's memo, not in module
globals. On startup the `Runtime` logs in, starts the MetricsService (and, with no suggestion address configured, an
in-process SuggestionService) and the controller's workers. Trials and trial Pods are indexed
so that kopf lists them completely before any TuningJob is reconciled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

import kopf
from kubetune.intake import MetricsIntake
from kubetune.rpc.metrics import Point
from kubetune.rpc.server import Server, serve
from kubetune.rpc.suggestion import SuggestionClient
from kubetune.telemetry import PullCollector, ScrapeError, Telemetry

from .builders import API_VERSION, TRIAL_LABEL, DefaultImage
from .cache import Cache, job_key_of, key_of
from .controller import Controller, now
from .exporter import OperatorHealth, job_counts, scrape_condition, seconds_since
from .kube import KubeApi, connection_info, load_configuration
from .logs import LogFollower
from .metrics import TrialStatusStore, loop_runner
from .settings import OperatorSettings
from .suggestion_main import read_token

GROUP, VERSION = API_VERSION.split("/")


class Runtime:
    """Everything the operator runs besides kopf, started and stopped with it."""

    def __init__(self, settings: OperatorSettings, kube: KubeApi) -> None:
        self.settings = settings
        self.kube = kube
        self.telemetry = Telemetry(lambda: job_counts(self.cache))
        self.cache = Cache(trial_ended=self._trial_ended)
        self.health = OperatorHealth(self.telemetry, lambda: self.controller.queue.depth())
        kube.on_request = self.health.api_request
        self.suggestion_server: Server | None = None
        if settings.suggestion_address is None:
            self.suggestion_server = serve("127.0.0.1:0", suggestions=True)
        address = settings.suggestion_address or self.suggestion_server.address  # type: ignore[union-attr]
        token = (
            read_token(settings.suggestion_token_file) if settings.suggestion_token_file else None
        )
        self.suggestions = SuggestionClient(
            address, timeout=settings.suggestion_timeout, token=token
        )
        loop = asyncio.get_running_loop()
        self.metrics = TrialStatusStore(
            self.cache,
            loop_runner(loop),
            lambda ns, name, patch: self.controller.write_status("trials", ns, name, patch),
            settings.status_interval,
            ready=lambda: self.controller.ready.is_set(),
            max_writes_per_second=settings.status_writes_per_second,
        )

        def wake_job(key: Hashable) -> None:
            self._wake_threadsafe(loop, self.metrics.job_of(key))

        self.intake = MetricsIntake(self.metrics, wake_job, wake_job, self.telemetry)
        self.metrics_server = serve(
            settings.metrics_bind, metrics=self.intake, observe_report=self.telemetry.report
        )
        self.collector = PullCollector(
            lambda key, sample: self.intake.accept_scraped(
                key, Point(sample.step, sample.metrics, sample.invalid)
            ),
            lambda key, problem: self._scrape_trouble(loop, key, problem),  # type: ignore[arg-type]
            self.telemetry,
        )
        self.logs = LogFollower(
            kube.streaming_client(),
            self.intake.accept,
            self._container_ended,
            lambda key: self._wake_threadsafe(loop, self.metrics.job_of(key)),
        )
        self.controller = Controller(
            self.cache,
            kube,
            self.telemetry.timed_suggest(self.suggestions.suggest),
            settings.advertised_metrics_address(self.metrics_server.port),
            settings.max_backoff,
            health=self.health,
            collector=self.collector,
            logs=self.logs,
            collector_image=settings.collector_image,
            default_image=(
                DefaultImage(settings.trainer_image, settings.trainer_pull_policy)
                if settings.trainer_image
                else None
            ),
        )
        host, port = settings.exporter_bind.rsplit(":", 1)
        self.exporter = self.telemetry.serve(host.strip("[]"), int(port))
        self.task = asyncio.create_task(self.controller.run(settings.workers))
        self.lag_task = asyncio.create_task(self.health.watch_loop_lag())

    def _container_ended(self, key: Hashable, pod: str) -> bool:
        """Whether a followed pod has ended (or is gone): its log holds no more lines."""
        found = self.cache.get("pods", (key[0], pod))  # type: ignore[index]
        phase = ((found or {}).get("status") or {}).get("phase")
        return found is None or phase in ("Succeeded", "Failed")

    def _trial_ended(self, trial: dict[str, Any]) -> None:
        status = trial.get("status") or {}
        start = seconds_since(status.get("startTime"))
        end = seconds_since(status.get("completionTime"))
        if start is not None and end is not None:
            self.telemetry.trial_ended(start - end)

    def _scrape_trouble(
        self, loop: asyncio.AbstractEventLoop, key: tuple[str, str], problem: ScrapeError | None
    ) -> None:
        """A trial's endpoint failed (or works again): its MetricsCollected condition, and an
        Event when it fails. Runs in a scrape thread."""
        trial = self.cache.get("trials", key)
        if trial is None:
            return
        reason, message = (problem.reason, str(problem)) if problem else (None, "")
        patch = scrape_condition(trial, reason, message, now())
        self.metrics.run(self.controller.write_status("trials", *key, patch))
        if problem is not None:
            loop.call_soon_threadsafe(
                self.controller.event, trial, "Warning", "MetricsScrapeFailed", message
            )

    def _wake_threadsafe(self, loop: asyncio.AbstractEventLoop, job: tuple[str, str]) -> None:
        loop.call_soon_threadsafe(self.wake, job)

    def wake(self, job: tuple[str, str]) -> None:
        self.controller.queue.add(job)

    async def stop(self) -> None:
        self.task.cancel()
        self.lag_task.cancel()
        await asyncio.gather(self.task, self.lag_task, return_exceptions=True)
        self.controller.queue.close()
        await asyncio.to_thread(self.collector.close)
        await asyncio.to_thread(self.logs.close)
        await asyncio.to_thread(self.exporter.close)
        await asyncio.to_thread(self.metrics_server.stop, 1.0)
        await asyncio.to_thread(self.metrics.close)
        self.suggestions.close()
        if self.suggestion_server is not None:
            await asyncio.to_thread(self.suggestion_server.stop, 0.5)
        await self.kube.close()


def settings_of(memo: kopf.Memo) -> OperatorSettings:
    """The operator's settings: as `kubetune-operator` parsed them into the memo, or (under a
    plain `kopf run`) from the environment."""
    if "settings" not in memo:
        memo.settings = OperatorSettings.from_env()
    settings: OperatorSettings = memo.settings
    return settings


def runtime(memo: kopf.Memo) -> Runtime:
    found: Runtime | None = memo.get("runtime")
    if found is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return found


@kopf.on.startup()
async def startup(memo: kopf.Memo, **kwargs: Any) -> None:
    settings: kopf.OperatorSettings = kwargs["settings"]
    logger: logging.Logger = kwargs["logger"]
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.scanning.disabled = True  # no CRD or namespace scans: less RBAC, CRDs come first
    ours = settings_of(memo)
    kube = await asyncio.to_thread(KubeApi, ours.kube_context, ours.api_workers)
    memo.runtime = Runtime(ours, kube)  # resource handlers' memos are copies made after this
    logger.info("kubetune operator started; metrics at %s", memo.runtime.controller.metrics_address)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    found: Runtime | None = memo.get("runtime")
    if found is not None:
        memo.runtime = None
        await found.stop()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the official client's config loading (again after a 401)."""
    return connection_info(load_configuration(settings_of(memo).kube_context))


def _observe(rt: Runtime, kind: str, event: kopf.RawEvent) -> None:
    """Runs on the event loop (the handlers are async: kopf runs sync handlers in threads, and
    the work queue is an asyncio structure)."""
    obj = event["object"]
    if event.get("type") == "DELETED":
        rt.cache.drop(kind, obj)
    elif rt.cache.echo(kind, obj):
        return  # our own write coming back: whoever wrote it has acted on it already
    else:
        rt.cache.put(kind, obj)
    job = key_of(obj) if kind == "tuningjobs" else job_key_of(obj)
    if job is not None:
        rt.wake(job)


@kopf.index(GROUP, VERSION, "trials")
async def trials_listed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    runtime(memo).cache.put("trials", dict(body))
    return {}


@kopf.index("", "v1", "pods", labels={TRIAL_LABEL: kopf.PRESENT})
async def pods_listed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    runtime(memo).cache.put("pods", dict(body))
    return {}


@kopf.index("batch", "v1", "jobs", labels={TRIAL_LABEL: kopf.PRESENT})
async def jobs_listed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    runtime(memo).cache.put("jobs", dict(body))
    return {}


@kopf.on.event(GROUP, VERSION, "tuningjobs")
async def tuningjob_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    rt = runtime(memo)
    _observe(rt, "tuningjobs", event)
    rt.controller.ready.set()


@kopf.on.event(GROUP, VERSION, "trials")
async def trial_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _observe(runtime(memo), "trials", event)


@kopf.on.event("", "v1", "pods", labels={TRIAL_LABEL: kopf.PRESENT})
async def pod_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _observe(runtime(memo), "pods", event)


@kopf.on.event("batch", "v1", "jobs", labels={TRIAL_LABEL: kopf.PRESENT})
async def job_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _observe(runtime(memo), "jobs", event)
