"""The test node's Service proxy: what kube-proxy's userspace mode did, without iptables.

It lists and watches Services and EndpointSlices as `system:kube-proxy`. For each TCP port of a
Service with a cluster IP it listens on clusterIP:port (the node owns the whole service range,
see network.py) and forwards each connection to a ready endpoint, round robin. It also keeps the
pods' hosts files in step with the Services (the cluster DNS names).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from typing import TYPE_CHECKING, Any

from .api import Api, inform, log

if TYPE_CHECKING:
    from .control_plane import ControlPlane

Key = tuple[str, str]  # (namespace, name)


class ServiceProxy:
    def __init__(self, plane: ControlPlane) -> None:
        self.api = Api(plane.proxy_kubeconfig)
        self.network = plane.network
        self.services: dict[Key, dict[str, Any]] = {}
        self.slices: dict[Key, dict[str, Any]] = {}  # by the slice's own name
        self._listeners: dict[tuple[str, int], tuple[asyncio.Server, Key, str | None]] = {}
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="proxy", daemon=True)
        self._thread.start()
        inform(self.api, "/api/v1/services", self._list_services, self._service, self._stop)
        inform(
            self.api,
            "/apis/discovery.k8s.io/v1/endpointslices",
            self._list_slices,
            self._slice,
            self._stop,
        )

    # -- the informers' callbacks (their threads) ------------------------------------------------

    def _list_services(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self.services = {_key(o): o for o in items}
        self._sync()

    def _service(self, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            if kind == "DELETED":
                self.services.pop(_key(obj), None)
            else:
                self.services[_key(obj)] = obj
        self._sync()

    def _list_slices(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self.slices = {_key(o): o for o in items}

    def _slice(self, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            if kind == "DELETED":
                self.slices.pop(_key(obj), None)
            else:
                self.slices[_key(obj)] = obj

    def _sync(self) -> None:
        wanted: dict[tuple[str, int], tuple[Key, str | None]] = {}
        names: dict[Key, str] = {}
        with self._lock:
            for key, svc in self.services.items():
                cluster_ip = svc["spec"].get("clusterIP")
                if not cluster_ip or cluster_ip == "None":
                    continue
                names[key] = cluster_ip
                for port in svc["spec"].get("ports", []):
                    if port.get("protocol", "TCP") == "TCP":
                        wanted[(cluster_ip, port["port"])] = (key, port.get("name"))
        self.network.set_services(names)
        asyncio.run_coroutine_threadsafe(self._listen(wanted), self.loop).result(30)

    # -- the proxy (its loop) ---------------------------------------------------------------------

    async def _listen(self, wanted: dict[tuple[str, int], tuple[Key, str | None]]) -> None:
        for address in [a for a in self._listeners if a not in wanted]:
            server, _, _ = self._listeners.pop(address)
            server.close()
        for address, (key, port_name) in wanted.items():
            current = self._listeners.get(address)
            if current and current[1:] == (key, port_name):
                continue
            if current:
                current[0].close()

            async def handle(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                key: Key = key,
                port: int = address[1],
            ) -> None:
                await self._forward(reader, writer, key, port)

            try:
                server = await asyncio.start_server(handle, address[0], address[1])
            except OSError as exc:
                log.error("proxy: cannot listen on %s:%s: %s", *address, exc)
                continue
            self._listeners[address] = (server, key, port_name)

    def endpoints(self, key: Key, port: int) -> list[tuple[str, int]]:
        """The ready (address, port) pairs behind one port of a Service."""
        with self._lock:
            svc = self.services.get(key)
            if svc is None:
                return []
            spec_port = next(p for p in svc["spec"]["ports"] if p["port"] == port)
            name = spec_port.get("name") or ""
            found = []
            for slc in self.slices.values():
                labels = slc["metadata"].get("labels") or {}
                if slc["metadata"]["namespace"] != key[0]:
                    continue
                if labels.get("kubernetes.io/service-name") != key[1]:
                    continue
                target = next(
                    (p["port"] for p in slc.get("ports") or [] if (p.get("name") or "") == name),
                    None,
                )
                if target is None:
                    continue
                for endpoint in slc.get("endpoints") or []:
                    if (endpoint.get("conditions") or {}).get("ready") is False:
                        continue
                    found.append((endpoint["addresses"][0], int(target)))
        return found

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: Key, port: int
    ) -> None:
        targets = self.endpoints(key, port)
        if not targets:
            writer.close()  # no ready endpoint: refused, as kube-proxy rejects it
            return
        host, target = targets[next(self._turn) % len(targets)]
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, target), 5)
        except (OSError, TimeoutError):
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def stop(self) -> None:
        self._stop.set()

        async def close() -> None:
            for server, _, _ in self._listeners.values():
                server.close()
            self._listeners.clear()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _key(obj: dict[str, Any]) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]
