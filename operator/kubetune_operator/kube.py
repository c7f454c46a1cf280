"""A small asyncio client for the Kubernetes API calls the operator makes itself.

kopf watches and logs in; writes that kopf does not make for us (creating Trials and Pods,
status patches, deletions) go through `KubeClient`, built from the `kopf.ConnectionInfo` that the
login handler returned, so in-cluster service accounts and kubeconfig both work.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
from typing import Any

import aiohttp
import kopf

MERGE = "application/merge-patch+json"


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        return False
    ctx = ssl.create_default_context(
        cafile=str(info.ca_path) if info.ca_path else None,
        cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
    )
    cert, key = info.certificate_path, info.private_key_path
    for data, attr in ((info.certificate_data, "cert"), (info.private_key_data, "key")):
        if data:
            f = tempfile.NamedTemporaryFile("wb", delete=False, suffix=".pem")  # noqa: SIM115
            f.write(data.encode() if isinstance(data, str) else data)
            f.close()
            cert, key = (f.name, key) if attr == "cert" else (cert, f.name)
    if cert:
        ctx.load_cert_chain(os.fspath(cert), os.fspath(key) if key else None)
    return ctx


def api_path(api_version: str, plural: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name else base


class KubeClient:
    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 30.0) -> None:
        self.server = info.server.rstrip("/")
        headers = {"Accept": "application/json"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        self.session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=_ssl_context(info), limit=32),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        delay = 0.1
        for attempt in range(5):
            try:
                async with self.session.request(
                    method, self.server + path, data=data, headers={"Content-Type": content_type}
                ) as response:
                    text = await response.text()
                    if response.status < 400:
                        return json.loads(text) if text else {}
                    if response.status not in (429, 500, 502, 503, 504) or attempt == 4:
                        raise KubeError(response.status, _message(text))
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt == 4:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def create(self, obj: dict[str, Any], plural: str) -> dict[str, Any] | None:
        """Create `obj`; None if it already exists (creating twice is harmless)."""
        meta = obj["metadata"]
        try:
            return await self.request(
                "POST", api_path(obj["apiVersion"], plural, meta.get("namespace")), obj
            )
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
        path = api_path(api_version, plural, namespace, name) + ("/status" if status else "")
        return await self.request("PATCH", path, patch, MERGE)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> bool:
        """Delete; False if it was already gone."""
        try:
            await self.request("DELETE", api_path(api_version, plural, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def close(self) -> None:
        await self.session.close()


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except ValueError:
        return text[:500]
