"""The pull collector: scrape each running trial's Prometheus endpoint and turn every new step
into a report, on the same path as a gRPC report (storage, early stopping, status).

The trial contract: gauges named like the objective's metrics, and a step gauge
(`metricsCollector.stepMetric`). A scrape counts only when the step advanced past the last one
taken; step 0 (a fresh gauge) means "no result yet". Each target is scraped every `interval`
with a `timeout`; after a failure it is retried with a doubling delay capped at `max_backoff`,
and `trouble(key, error)` says so once per change (None once it works again). Connection
failures of a trial that is still starting (STARTUP_GRACE) or exiting (fewer than FLAKES in a
row) are retried at the plain interval and are not a problem yet. Scrapes run in a
small thread pool, so a slow or dead endpoint never holds up the job or the other trials.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ..rpc.metrics import rejection, usable
from ._export import Telemetry

MAX_BODY = 4 * 1024 * 1024  # bytes; a metrics page larger than this is refused
CONNECTION = ("unreachable", "timeout")  # failures that a starting or exiting trial causes
STARTUP_GRACE = 60.0  # seconds a new trial may take to open its endpoint before it is a problem
FLAKES = 3  # connection failures in a row, once it has answered, before they are a problem
log = logging.getLogger("kubetune.scrape")


class ScrapeError(Exception):
    """A scrape that gave nothing usable; `reason` is a short label, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Sample:
    step: int
    metrics: dict[str, float]  # finite values
    invalid: list[str]  # names whose value was NaN or infinite


@dataclass(frozen=True)
class Target:
    url: str
    names: tuple[str, ...]  # the objective first, then the additional metrics
    step_metric: str
    interval: float
    timeout: float


def fetch(url: str, timeout: float) -> str:
    """The page at `url`; ScrapeError when unreachable, slow, refused or oversized."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        raise ScrapeError("http_error", f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ScrapeError("timeout", f"{url}: no answer within {timeout:g}s") from None
        raise ScrapeError("unreachable", f"{url}: {exc.reason}") from None
    except TimeoutError:
        raise ScrapeError("timeout", f"{url}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise ScrapeError("unreachable", f"{url}: {exc}") from None
    if len(body) > MAX_BODY:
        raise ScrapeError("too_large", f"{url}: more than {MAX_BODY} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ScrapeError("bad_format", f"{url}: not UTF-8 text") from None


def read_sample(text: str, names: Sequence[str], step_metric: str) -> Sample:
    """The step and metrics of one exposition page (parsed by prometheus_client)."""
    wanted = {*names, step_metric}
    found: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    found.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError("bad_format", f"not Prometheus text format: {exc}") from None
    for name, values in found.items():
        if len(values) > 1:
            raise ScrapeError(
                "ambiguous", f"{name!r} has {len(values)} series; expose one, without labels"
            )
    if step_metric not in found:
        raise ScrapeError("missing_step", f"no gauge {step_metric!r} (metricsCollector.stepMetric)")
    step = found[step_metric][0]
    if not usable(step) or step < 0 or step != int(step):
        raise ScrapeError("bad_step", f"{step_metric!r} must be a whole number >= 0 (got {step})")
    if names[0] not in found:
        raise ScrapeError("missing_objective", f"no gauge {names[0]!r} (the objective)")
    latest = {n: found[n][0] for n in names if n in found}
    return Sample(
        int(step),
        {n: v for n, v in latest.items() if usable(v)},
        sorted(n for n, v in latest.items() if not usable(v)),
    )


@dataclass
class _State:
    target: Target
    group: Hashable
    due: float
    last_step: int = 0
    failures: int = 0
    answered: bool = False  # a scrape has worked at least once
    started: float = 0.0  # when it became a target (monotonic)
    problem: str | None = None  # the reason of the problem reported, until a scrape works
    last_reason: str | None = None  # the reason of the last scrape's failure
    busy: bool = False


Deliver = Callable[[Hashable, Sample], None]
Trouble = Callable[[Hashable, "ScrapeError | None"], None]


class PullCollector:
    """Scrapes its targets on their intervals; see the module docstring."""

    def __init__(
        self,
        deliver: Deliver,
        trouble: Trouble,
        telemetry: Telemetry | None = None,
        workers: int = 4,
        max_backoff: float = 60.0,
    ) -> None:
        self.deliver, self.trouble, self.telemetry = deliver, trouble, telemetry
        self.max_backoff = max_backoff
        self.startup_grace = STARTUP_GRACE
        self._states: dict[Hashable, _State] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._wake = threading.Condition()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape")
        self._thread = threading.Thread(target=self._schedule, name="scrape-scheduler", daemon=True)
        self._thread.start()

    def set_targets(self, group: Hashable, targets: dict[Hashable, Target]) -> None:
        """The targets of one group (a job) from now on; a kept target keeps its last step."""
        with self._wake:
            for key in [k for k, s in self._states.items() if s.group == group]:
                if key not in targets:
                    del self._states[key]
            for key, target in targets.items():
                state = self._states.get(key)
                if state is None or state.target != target:
                    now = time.monotonic()
                    self._states[key] = _State(target, group, now, started=now)
                    self._push(key, now)
            if self.telemetry is not None:
                self.telemetry.scrape_targets.set(len(self._states))
            self._wake.notify()

    def targets(self) -> list[Hashable]:
        with self._wake:
            return list(self._states)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- scheduling -----------------------------------------------------------------------------
    def _push(self, key: Hashable, due: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, key))

    def _schedule(self) -> None:
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due, _, key = heapq.heappop(self._heap)
                    state = self._states.get(key)
                    if state is None or state.busy or state.due != due:
                        continue  # dropped, running, or rescheduled since
                    state.busy = True
                    self._pool.submit(self._scrape, key, state)
                timeout = self._heap[0][0] - now if self._heap else None
                self._wake.wait(timeout)

    def _scrape(self, key: Hashable, state: _State) -> None:
        target = state.target
        started = time.perf_counter()
        problem: ScrapeError | None = None
        try:
            sample = read_sample(
                fetch(target.url, target.timeout), target.names, target.step_metric
            )
            if sample.step > state.last_step:
                self._deliver(key, sample)
                state.last_step = sample.step
        except ScrapeError as exc:
            problem = exc
        except Exception:  # a bug of ours must not end the scraping of every other trial
            log.exception("scraping %s failed", target.url)
            problem = ScrapeError("internal", f"{target.url}: internal error")
        if self.telemetry is not None:
            self.telemetry.scrape_duration.observe(time.perf_counter() - started)
            self.telemetry.scrapes.labels(problem.reason if problem else "ok").inc()
        self._settle(key, state, problem)

    def _deliver(self, key: Hashable, sample: Sample) -> None:
        try:
            self.deliver(key, sample)
        except Exception as exc:
            result = rejection(exc)
            if result is None:
                raise
            if self.telemetry is not None:
                self.telemetry.report(result)
            return
        if self.telemetry is not None:
            self.telemetry.report("non_finite" if sample.invalid else "accepted")

    def _settle(self, key: Hashable, state: _State, problem: ScrapeError | None) -> None:
        with self._wake:
            state.busy = False
            state.failures = state.failures + 1 if problem else 0
            state.answered = state.answered or problem is None or problem.reason not in CONNECTION
            delay = state.target.interval
            reported = state.problem
            if problem is None:
                reported = None
            elif self._is_problem(state, problem):
                delay = min(delay * 2 ** min(state.failures - 1, 16), self.max_backoff)
                delay = max(delay, state.target.interval)
                # another problem replaces a reported one once it repeats (not a one-off at exit)
                if reported is None or problem.reason == state.last_reason:
                    reported = problem.reason
            state.last_reason = problem.reason if problem else None
            changed = reported != state.problem
            state.problem = reported
            if self._states.get(key) is not state:
                return  # dropped while it ran
            state.due = time.monotonic() + delay
            self._push(key, state.due)
            self._wake.notify()
        if changed:
            try:
                self.trouble(key, problem if reported else None)
            except Exception:
                log.exception("reporting a scrape problem of %s failed", key)

    def _is_problem(self, state: _State, problem: ScrapeError) -> bool:
        if problem.reason not in CONNECTION:
            return True
        if state.answered:
            return state.failures >= FLAKES
        return time.monotonic() - state.started >= self.startup_grace
