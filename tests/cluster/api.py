"""Plain-JSON access to the test API server for the test-side node parts (kubelet, proxy):
requests and list+watch loops over the official client's REST layer and kubeconfig loading."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("kubetune.tests.cluster")


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        configuration = kubernetes.client.Configuration()
        configuration.retries = 0  # callers retry: the API server restarts in some tests
        self.client = kubernetes.config.new_client_from_config(
            str(kubeconfig), client_configuration=configuration
        )

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None,
        headers: dict[str, str],
        body: Any = None,
        timeout: Any = 30,
    ) -> Any:
        config = self.client.configuration
        url = config.host + path + (f"?{urlencode(query)}" if query else "")
        token = (config.api_key or {}).get("authorization") or (config.api_key or {}).get(
            "BearerToken"
        )
        if token:
            headers = {**headers, "Authorization": token}
        reply = self.client.call_api(method, url, headers, body, None, timeout)
        if not 200 <= reply.status < 300:
            raise ApiException(http_resp=reply.response)
        return reply

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        """The decoded reply; ApiException on an HTTP error."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        data = self._call(method, path, query, headers, body, timeout).read()
        return json.loads(data) if data else None

    def get(self, path: str) -> Any:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, path: str, resource_version: str, query: dict[str, str]) -> Iterator[Any]:
        params = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "60",
        }
        headers = {"Accept": "application/json"}
        reply = self._call("GET", path, params, headers, timeout=(10, 90)).response
        try:
            buffer = b""
            for chunk in reply.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            reply.release_conn()


def inform(
    api: Api,
    path: str,
    on_list: Callable[[list[dict[str, Any]]], None],
    on_event: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
    query: dict[str, str] | None = None,
) -> threading.Thread:
    """A daemon thread that lists `path`, then watches it, relisting after a `410 Gone` or a
    lost connection; `on_list` gets every list, `on_event` every change."""

    def loop() -> None:
        version: str | None = None
        while not stop.is_set():
            try:
                if version is None:
                    listed = api.request("GET", path, query=query)
                    on_list(listed["items"])
                    version = listed["metadata"]["resourceVersion"]
                for event in api.watch(path, version, query or {}):
                    if stop.is_set():
                        return
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        version = None  # 410 Gone or another expiry: list again
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        on_event(kind, obj)
            except Exception as exc:  # the API server restarting, a dropped connection
                if stop.is_set():
                    return
                if isinstance(exc, ApiException) and exc.status == 410:
                    version = None
                log.debug("watch %s: %s", path, exc)
                time.sleep(0.5)

    thread = threading.Thread(target=loop, name=f"watch {path}", daemon=True)
    thread.start()
    return thread
