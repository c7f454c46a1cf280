"""The operator's own Kubernetes API calls, through the official `kubernetes` client.

kopf watches; writes that kopf does not make for us (Trials, Pods, token Secrets, status patches,
deletions, Events) go through `KubeApi`. Credentials come from `kubetune.kubeconfig`, in kubectl's
order: `KUBECONFIG`, `~/.kube/config`, the in-cluster service account. The client
refreshes rotating tokens itself (`refresh_api_key_hook`), and a 401 reloads the credentials and
retries once. Key material that the library must hand to OpenSSL as a file is its own temporary
file, removed at exit; this module writes none. The blocking client runs in a bounded thread pool,
so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pydantic
import urllib3
from kubernetes import client
from kubetune import kubeconfig

MERGE = "application/merge-patch+json"
TRANSIENT = (429, 500, 502, 503, 504)
log = logging.getLogger("kubetune.operator.kube")


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def load_configuration(context: str | None = None) -> client.Configuration:
    """Credentials as `kubectl` finds them (`kubetune.kubeconfig`, shared with the client)."""
    return kubeconfig.load(context)[0]


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """The same credentials for kopf's watches (kopf logs in again after a 401)."""
    header = configuration.get_api_key_with_prefix("BearerToken") or ""
    scheme, _, token = header.rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why the client would refuse to send `pod` (its own model validation), or None."""
    try:
        client.V1Pod.from_dict(pod)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{exc.title} {where}: {first['msg']}"
    return None


class KubeApi:
    """Create, patch and delete objects; results are plain dicts as the API server sent them."""

    def __init__(
        self,
        context: str | None = None,
        workers: int = 8,
        attempts: int = 5,
        load: Callable[[str | None], client.Configuration] = load_configuration,
        on_request: Callable[[str, int | str], None] = lambda verb, code: None,
    ) -> None:
        self.on_request = on_request  # hears (verb, HTTP code or "error") of every request
        self.context, self.workers, self.attempts, self._load = context, workers, attempts, load
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube-api")
        self._api = self._connect()

    def _connect(self) -> client.ApiClient:
        configuration = self._load(self.context)
        configuration.connection_pool_maxsize = self.workers
        configuration.retries = False  # retries are ours, with backoff, below
        return client.ApiClient(configuration)

    def streaming_client(self, connections: int = 1024) -> client.ApiClient:
        """A client of its own for long-lived streams (pod logs), with room in its pool for a
        connection per stream."""
        configuration = self._load(self.context)
        configuration.connection_pool_maxsize = connections
        configuration.retries = False
        return client.ApiClient(configuration)

    # -- the calls ------------------------------------------------------------------------------
    async def create(self, obj: dict[str, Any], plural: str) -> dict[str, Any] | None:
        """Create `obj`; None if it already exists (creating twice is harmless)."""
        ns = obj["metadata"].get("namespace", "default")
        try:
            return await self._call("create", lambda api: _create(api, obj, plural, ns))
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    async def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        status: bool = False,
    ) -> dict[str, Any]:
        """Merge-patch a custom resource (or its status)."""
        group, version = api_version.split("/")

        def call(api: client.ApiClient) -> Any:
            custom = client.CustomObjectsApi(api)
            method = (
                custom.patch_namespaced_custom_object_status
                if status
                else custom.patch_namespaced_custom_object
            )
            return method(
                group,
                version,
                namespace,
                plural,
                name,
                patch,
                _content_type=MERGE,
                _preload_content=False,
            )

        return await self._call("patch", call)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> bool:
        """Delete (gracefully, as the server decides); False if it was already gone. A Job goes
        in the foreground: it is gone only once its pods are."""
        if (api_version, plural) not in (("v1", "pods"), ("batch/v1", "jobs")):
            raise ValueError(f"the operator deletes only pods and jobs, not {plural}")

        def call(api: client.ApiClient) -> Any:
            if plural == "jobs":
                return client.BatchV1Api(api).delete_namespaced_job(
                    name,
                    namespace,
                    body=client.V1DeleteOptions(propagation_policy="Foreground"),
                    _preload_content=False,
                )
            return client.CoreV1Api(api).delete_namespaced_pod(
                name, namespace, _preload_content=False
            )

        try:
            await self._call("delete", call)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown)
        self._api.close()  # type: ignore[no-untyped-call]

    # -- retries --------------------------------------------------------------------------------
    async def _call(self, verb: str, request: Callable[[client.ApiClient], Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        delay, reloaded = 0.1, False
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                response = await loop.run_in_executor(self._pool, request, self._api)
                self.on_request(verb, response.status)
                data = response.data
                return json.loads(data) if data else {}
            except client.ApiException as exc:
                self.on_request(verb, exc.status or "error")
                if exc.status == 401 and not reloaded:  # a rotated token: log in again, once
                    log.info("401 from the API server: reloading credentials")
                    reloaded = True
                    self._api = await loop.run_in_executor(self._pool, self._connect)
                    continue
                if exc.status not in TRANSIENT or last:
                    raise KubeError(exc.status or 0, _message(exc.body)) from None
            except urllib3.exceptions.HTTPError:
                self.on_request(verb, "error")
                if last:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")


def _create(api: client.ApiClient, obj: dict[str, Any], plural: str, namespace: str) -> Any:
    if obj["apiVersion"] == "batch/v1" and plural == "jobs":
        create_job: Callable[..., Any] = client.BatchV1Api(api).create_namespaced_job
        return create_job(namespace, obj, _preload_content=False)
    if "/" in obj["apiVersion"]:
        group, version = obj["apiVersion"].split("/")
        return client.CustomObjectsApi(api).create_namespaced_custom_object(
            group, version, namespace, plural, obj, _preload_content=False
        )
    core = client.CoreV1Api(api)
    creators: dict[str, Callable[..., Any]] = {
        "pods": core.create_namespaced_pod,
        "secrets": core.create_namespaced_secret,
        "events": core.create_namespaced_event,
        "persistentvolumeclaims": core.create_namespaced_persistent_volume_claim,
    }
    if plural not in creators:
        raise ValueError(f"the operator creates no {plural}")
    return creators[plural](namespace, obj, _preload_content=False)


def _message(body: Any) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text[:500]
