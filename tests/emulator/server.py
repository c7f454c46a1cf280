"""A Kubernetes API server emulator for the end-to-end tests, built on kmock's KubernetesEmulator.

kmock 0.8 serves discovery, errors and the HTTP plumbing; as shipped its object handling stalls
kopf and kubectl (no resourceVersions, no selectors, no resumable watches, no subresources).
`ApiServerEmulator` keeps kmock's server, request parsing and discovery documents and routes
every resource request to a faithful implementation over `Store`: 201 on create, 409 on conflicts,
merge/JSON/apply patches, the /status subresource, label and field selectors, resumable watches
with bookmarks and timeouts, ownerReference GC, namespaces, server-side tables from printer
columns, a minimal OpenAPI v3 document, and discovery of CRDs applied to it.
`EmulatorThread` serves it from its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import yaml
from kmock import KubernetesEmulator, ResourceInfo, Server, resource
from kmock._internal import rendering

from . import protobuf
from .auth import Authorizer, verb_of
from .store import ApiError, Kind, Store, matches_fields, matches_labels, merge_patch, now

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
CORE_KINDS = [
    Kind("", "v1", "namespaces", "Namespace", namespaced=False, status=True, short_names=["ns"]),
    Kind(
        "",
        "v1",
        "pods",
        "Pod",
        status=True,
        short_names=["po"],
        printer_columns=[
            {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Kind("", "v1", "events", "Event", short_names=["ev"]),
    Kind("", "v1", "services", "Service", status=True, short_names=["svc"]),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", short_names=["sa"]),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "configmaps", "ConfigMap", short_names=["cm"]),
    Kind("apps", "v1", "deployments", "Deployment", status=True, short_names=["deploy"]),
    # served so that clients reading a Deployment's ReplicaSets (helm's kstatus) get a list;
    # the tests' DeploymentController owns pods directly and makes none
    Kind("apps", "v1", "replicasets", "ReplicaSet", status=True, short_names=["rs"]),
    Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=["netpol"]),
    Kind(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        status=True,
        short_names=["pdb"],
    ),
    Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    Kind(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Kind(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status=True,
        short_names=["crd"],
    ),
]
NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(/[^/]+(/status|/finalize)?)?/?")
SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.1-kubetune-emulator",
    "platform": "linux/amd64",
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str | None
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_route(path: str) -> Route | None:
    """Split an API path; None for non-resource paths (discovery, /version, /openapi)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural, name = rest[0], rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Route(group, version, plural, namespace, name, subresource)


def jsonpath(obj: Any, path: str) -> Any:
    for part in path.strip("{}").strip(".").split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    s = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 60}m" if s < 10800 else f"{s // 3600}h"


@attrs.define(kw_only=True)
class ApiServerEmulator(KubernetesEmulator):
    store: Store = attrs.field(factory=Store)
    auth: Authorizer = attrs.field(factory=Authorizer)
    bookmark_interval: float = 1.0
    log_dir: Path | None = None  # where the kubelet writes pod logs (`<pod name>.log`)
    watch_epoch: int = attrs.field(default=0, init=False)  # expire_watches() ends older watches
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    listeners: list[Callable[[str, dict[str, Any]], Awaitable[None]]] = attrs.field(
        factory=list, init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in CORE_KINDS:
            self.add_kind(kind)
        for ns in ("default", "kube-system"):
            self.store.create(self.store.kind("", "namespaces"), "", {"metadata": {"name": ns}})

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        ctype = raw_request.headers.get("Content-Type", "")
        if "protobuf" in ctype or "cbor" in ctype:
            return await self._decoded(raw_request, ctype)
        if NAMESPACE_PATH.fullmatch(raw_request.path):
            # kmock's path parser fails on /api/v1/namespaces[/NAME]: build the request here.
            request = rendering.Request(
                method=raw_request.method,
                url=raw_request.url,
                params=dict(raw_request.query),
                headers=dict(raw_request.headers),
                body=await raw_request.read(),
                raw_request=raw_request,
            )
            self._requests.append(request)
            return await self._handle(request)
        return await super().__call__(raw_request)

    async def _decoded(
        self, raw_request: aiohttp.web.BaseRequest, ctype: str
    ) -> aiohttp.web.StreamResponse:
        """A protobuf body (helm's release Secrets), served as if it had been sent as JSON."""
        try:
            if "protobuf" not in ctype:
                raise ValueError(f"the media type {ctype} is not supported")
            obj = protobuf.decode(await raw_request.read())
        except (ValueError, IndexError) as exc:
            return self._status(ApiError(415, "UnsupportedMediaType", str(exc)))
        headers = {**raw_request.headers, "Content-Type": "application/json"}
        request = rendering.Request(
            method=raw_request.method,
            url=raw_request.url,
            params=dict(raw_request.query),
            headers=headers,
            body=json.dumps(obj).encode(),
            raw_request=raw_request,
        )
        self._requests.append(request)
        return await self._handle(request)

    def add_kind(self, kind: Kind) -> None:
        self.store.add_kind(kind)
        self.resources[resource(group=kind.group, version=kind.version, plural=kind.plural)] = (
            ResourceInfo(
                kind=kind.kind,
                namespaced=kind.namespaced,
                singular=kind.singular or kind.kind.lower(),
                shortnames=set(kind.short_names),
                verbs=VERBS,
                subresources={"status"} if kind.status else set(),
            )
        )

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    # -- routing ----------------------------------------------------------------------------
    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        if path.startswith("/openapi/v3"):
            return aiohttp.web.json_response(self._openapi(path))
        if path == "/version":
            return aiohttp.web.json_response(SERVER_VERSION)
        discovery = self._discovery(path)
        if discovery is not None:
            return aiohttp.web.json_response(discovery)
        route = parse_route(path)
        if route is None:
            return await super(KubernetesEmulator, self)._handle(request)  # kmock's fallbacks
        try:
            self._authorize(request, route)
            return await self._serve(request, route)
        except ApiError as exc:
            return self._status(exc)

    def _status(self, exc: ApiError) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": exc.message,
                "reason": exc.reason,
                "code": exc.code,
            },
            status=exc.code,
        )

    def _authorize(self, request: rendering.Request, route: Route) -> None:
        assert route.plural is not None
        resource = f"{route.plural}/{route.subresource}" if route.subresource else route.plural
        method = request.method.value.upper()
        verb = verb_of(method, route.name, dict(request.params))
        headers = dict(request.headers)
        self.auth.check(self.store, headers, (route.group, resource, verb), route.namespace)

    async def _serve(self, request: rendering.Request, route: Route) -> aiohttp.web.StreamResponse:
        assert route.plural is not None
        kind = self.store.kind(route.group, route.plural)
        if kind.version != route.version:
            raise ApiError(404, "NotFound", f"{route.group}/{route.version} is not served")
        params = dict(request.params)
        method = request.method.value.upper()
        ns = route.namespace
        if kind.namespaced and ns is not None:
            self.store.get(self.store.kind("", "namespaces"), "", ns)
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(request, kind, ns, route.name, params)
        if method == "GET" and kind.plural == "pods" and route.subresource == "log":
            assert route.name is not None
            return await self._pod_log(request, ns or "default", route.name, params)
        if method == "GET" and route.name is None:
            items = self.store.list(
                kind, ns, params.get("labelSelector"), params.get("fieldSelector")
            )
            return self._respond(request, kind, items, listing=True)
        if method == "GET":
            return self._respond(request, kind, [self.store.get(kind, ns or "", route.name)])
        before = self.store.rv
        if method == "POST" and route.name is None:
            obj = self.store.create(kind, ns or "", self._body(request))
            await self._publish(before)
            return aiohttp.web.json_response(obj, status=201)
        if method == "DELETE" and route.name is None:
            objs = self.store.list(
                kind, ns, params.get("labelSelector"), params.get("fieldSelector")
            )
            grace = self._grace(request, params)
            gone = [
                self.store.delete(
                    kind, o["metadata"].get("namespace", ""), o["metadata"]["name"], grace
                )
                for o in objs
            ]
            await self._publish(before)
            return aiohttp.web.json_response(
                {
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": {},
                    "items": gone,
                }
            )
        if route.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if method == "DELETE":
            gone_one = self.store.delete(kind, ns or "", route.name, self._grace(request, params))
            await self._publish(before)
            return aiohttp.web.json_response(gone_one)
        if method == "PUT":
            body = self._body(request)
            obj = self.store.update(kind, ns or "", route.name, lambda old: body, route.subresource)
        elif method == "PATCH":
            obj = await self._patch(request, kind, ns or "", route)
            if obj is None:
                obj = self.store.create(kind, ns or "", self._body(request))
                await self._publish(before)
                return aiohttp.web.json_response(obj, status=201)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
        await self._publish(before)
        return aiohttp.web.json_response(obj)

    def _grace(self, request: rendering.Request, params: dict[str, str]) -> int | None:
        """gracePeriodSeconds from the query or the DeleteOptions body; None if not given."""
        if "gracePeriodSeconds" in params:
            return int(params["gracePeriodSeconds"])
        options = self._body(request) if request.body else None
        value = options.get("gracePeriodSeconds") if isinstance(options, dict) else None
        return None if value is None else int(value)

    def _body(self, request: rendering.Request) -> Any:
        ctype = request.headers.get("Content-Type", "")
        try:
            if "yaml" in ctype:
                return yaml.safe_load(request.body)
            return json.loads(request.body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"cannot decode the request body: {exc}") from exc

    async def _patch(
        self, request: rendering.Request, kind: Kind, ns: str, route: Route
    ) -> dict[str, Any] | None:
        assert route.name is not None
        ctype = request.headers.get("Content-Type", "")
        body = self._body(request)
        if ctype.startswith("application/apply-patch"):
            # Server-side apply, simplified: create if missing, else merge the applied fields.
            try:
                self.store.get(kind, ns if kind.namespaced else "", route.name)
            except ApiError:
                return None
            return self.store.update(
                kind, ns, route.name, lambda old: _apply(old, body), route.subresource
            )
        return self.store.patch(kind, ns, route.name, ctype, body, route.subresource)

    async def _publish(self, before: int) -> None:
        """After every write: CRD side effects and listeners for each event since `before`
        (a write may cascade: GC, orphans), then wake the watches."""
        for event in self.store.events_since(before) or []:
            if event.key == CRD_KEY:
                self._crd_changed(event.type, event.obj)
            for listener in self.listeners:
                await listener(event.type, event.obj)
        async with self.changed:
            self.changed.notify_all()

    def _crd_changed(self, type_: str, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        version = next(
            (v for v in spec.get("versions", []) if v.get("storage")), spec.get("versions", [{}])[0]
        )
        key = (spec.get("group", ""), names.get("plural", ""))
        if type_ == "DELETED":  # the API server deletes the CRD's objects with it
            gone = self.store.kinds.pop(key, None)
            self.store.objects.pop(key, None)
            if gone is not None:
                self.resources.pop(
                    resource(group=gone.group, version=gone.version, plural=gone.plural), None
                )
            return
        kind = Kind(
            group=key[0],
            version=version.get("name", "v1"),
            plural=key[1],
            kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            status="status" in (version.get("subresources") or {}),
            singular=names.get("singular", ""),
            short_names=list(names.get("shortNames", [])),
            categories=list(names.get("categories", [])),
            printer_columns=list(version.get("additionalPrinterColumns", [])),
        )
        self.add_kind(kind)
        if type_ == "ADDED":
            established = {
                "conditions": [
                    {"type": t, "status": "True", "reason": t, "lastTransitionTime": now()}
                    for t in ("NamesAccepted", "Established")
                ],
                "acceptedNames": names,
            }
            crd_kind = self.store.kinds[CRD_KEY]
            self.store.update(
                crd_kind,
                "",
                crd["metadata"]["name"],
                lambda o: {**o, "status": established},
                "status",
            )

    # -- responses --------------------------------------------------------------------------
    def _wants_table(self, request: rendering.Request, kind: Kind) -> bool:
        return "as=Table" in request.headers.get("Accept", "") and bool(kind.printer_columns)

    def _table(self, kind: Kind, objs: list[dict[str, Any]]) -> dict[str, Any]:
        columns = [{"name": "Name", "type": "string", "format": "name"}] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
            }
            for c in kind.printer_columns
        ]
        rows = []
        for obj in objs:
            cells: list[Any] = [obj["metadata"]["name"]]
            for c in kind.printer_columns:
                value = jsonpath(obj, c["jsonPath"])
                cells.append(age(value) if c.get("type") == "date" else value)
            meta = {
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": obj["metadata"],
            }
            rows.append({"cells": cells, "object": meta})
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self.store.rv)},
            "columnDefinitions": columns,
            "rows": rows,
        }

    def _respond(
        self,
        request: rendering.Request,
        kind: Kind,
        objs: list[dict[str, Any]],
        listing: bool = False,
    ) -> aiohttp.web.Response:
        if self._wants_table(request, kind):
            return aiohttp.web.json_response(self._table(kind, objs))
        if not listing:
            return aiohttp.web.json_response(objs[0])
        return aiohttp.web.json_response(
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": objs,
            }
        )

    async def _watch(
        self,
        request: rendering.Request,
        kind: Kind,
        ns: str | None,
        name: str | None,
        params: dict[str, str],
    ) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(params.get("timeoutSeconds") or 1800)
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        labels, fields = params.get("labelSelector"), params.get("fieldSelector")
        table = self._wants_table(request, kind)

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (
                (ns is None or meta.get("namespace", "") == ns)
                and (name is None or meta["name"] == name)
                and matches_labels(obj, labels)
                and matches_fields(obj, fields)
            )

        async def send(type_: str, obj: dict[str, Any]) -> None:
            shown = self._table(kind, [obj]) if table and type_ != "BOOKMARK" else obj
            await response.write(json.dumps({"type": type_, "object": shown}).encode() + b"\n")

        start = params.get("resourceVersion")
        epoch = self.watch_epoch
        initial = params.get("sendInitialEvents") == "true"
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            if not start or start == "0" or initial:
                last = self.store.rv
                for obj in self.store.list(kind, ns, labels, fields):
                    if wanted(obj):
                        await send("ADDED", obj)
                if initial:  # the watch-list protocol: a bookmark marks the end of the listing
                    end = {
                        "kind": kind.kind,
                        "apiVersion": kind.api_version,
                        "metadata": {
                            "resourceVersion": str(last),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    }
                    await send("BOOKMARK", end)
            else:
                last = int(start)
            while True:
                events = self.store.events_since(last)
                if events is None or self.watch_epoch != epoch:
                    gone = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Expired",
                        "code": 410,
                        "message": f"too old resource version: {last}",
                    }
                    await response.write(
                        json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n"
                    )
                    break
                for event in events:
                    if event.key == (kind.group, kind.plural) and wanted(event.obj):
                        await send(event.type, event.obj)
                    last = event.rv
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                async with self.changed:
                    if self.store.rv == last:
                        try:
                            await asyncio.wait_for(
                                self.changed.wait(), min(remaining, self.bookmark_interval)
                            )
                        except TimeoutError:
                            if bookmarks and self.store.rv == last:
                                mark = {
                                    "kind": kind.kind,
                                    "apiVersion": kind.api_version,
                                    "metadata": {"resourceVersion": str(last)},
                                }
                                await send("BOOKMARK", mark)
            await response.write_eof()
        return response

    def expire_watches(self) -> None:
        """What etcd compaction does to watchers: every open watch ends with 410 Gone, and no
        watch can resume from a resourceVersion older than now."""
        self.store.compact()
        self.watch_epoch += 1

        async def wake() -> None:
            async with self.changed:
                self.changed.notify_all()

        asyncio.get_running_loop().create_task(wake())

    async def _pod_log(
        self, request: rendering.Request, ns: str, name: str, params: dict[str, str]
    ) -> aiohttp.web.StreamResponse:
        """The kubelet's log of a pod; `follow=true` streams it until the container ends."""
        kind = self.store.kind("", "pods")
        pod = self.store.get(kind, ns, name)
        path = self.log_dir / f"{name}.log" if self.log_dir else None
        if (pod.get("status") or {}).get("phase", "Pending") == "Pending" or not (
            path and path.exists()
        ):
            container = pod["spec"]["containers"][0]["name"]
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        if params.get("follow") not in ("true", "1"):
            return aiohttp.web.Response(body=path.read_bytes(), content_type="text/plain")
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(raw)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError), open(path, "rb") as f:
            while True:
                chunk = f.read()
                if chunk:
                    await response.write(chunk)
                    continue
                current = self.store.objects[("", "pods")].get((ns, name))
                if current is None or (current.get("status") or {}).get("phase") in (
                    "Succeeded",
                    "Failed",
                ):
                    await response.write(f.read())
                    break
                await asyncio.sleep(0.05)  # the kubelet stand-in: a file it appends to
            await response.write_eof()
        return response

    def _discovery(self, path: str) -> dict[str, Any] | None:
        """Legacy discovery documents (/api, /apis, /api/v1, /apis/G, /apis/G/V) from the kinds."""
        kinds = list(self.store.kinds.values())
        versions: dict[str, list[str]] = {}
        for k in kinds:
            if k.group and k.version not in versions.setdefault(k.group, []):
                versions[k.group].append(k.version)

        def group_doc(group: str) -> dict[str, Any]:
            vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions[group]]
            return {"name": group, "versions": vs, "preferredVersion": vs[0]}

        parts = [p for p in path.split("/") if p]
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [group_doc(g) for g in sorted(versions)],
            }
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in versions:
            return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
        if parts[:1] == ["api"] and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[:1] == ["apis"] and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None
        resources = []
        for k in kinds:
            if (k.group, k.version) != (group, version):
                continue
            entry = {
                "name": k.plural,
                "singularName": k.singular or k.kind.lower(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": sorted(VERBS),
                "shortNames": k.short_names,
            }
            if k.categories:
                entry["categories"] = k.categories
            resources.append(entry)
            if k.status:
                resources.append(
                    {
                        "name": f"{k.plural}/status",
                        "singularName": "",
                        "namespaced": k.namespaced,
                        "kind": k.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        if not resources:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _openapi(self, path: str) -> dict[str, Any]:
        """A minimal OpenAPI v3: an index of group-versions and, per group-version, each kind's
        schema (the CRD's own where there is one) and PATCH operations that accept
        fieldValidation, so kubectl validates on the server side instead of asking for v2."""
        gvs = {(k.group, k.version) for k in self.store.kinds.values()}
        if path.rstrip("/") == "/openapi/v3":
            return {
                "paths": {
                    _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}"}
                    for g, v in sorted(gvs)
                }
            }
        wanted = path[len("/openapi/v3/") :].strip("/")
        crd_schemas = {
            (c["spec"]["group"], v["name"], c["spec"]["names"]["kind"]): v.get("schema", {}).get(
                "openAPIV3Schema", {}
            )
            for c in self.store.objects[CRD_KEY].values()
            for v in c["spec"].get("versions", [])
        }
        schemas: dict[str, Any] = {}
        paths: dict[str, Any] = {}
        for k in self.store.kinds.values():
            if _gv_path(k.group, k.version) != wanted:
                continue
            gvk = {"group": k.group, "version": k.version, "kind": k.kind}
            schema = dict(
                crd_schemas.get((k.group, k.version, k.kind))
                or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            )
            schema["x-kubernetes-group-version-kind"] = [gvk]
            reverse = ".".join(reversed(k.group.split("."))) if k.group else "io.k8s.api.core"
            schemas[f"{reverse}.{k.version}.{k.kind}"] = schema
            scope = "/namespaces/{namespace}" if k.namespaced else ""
            paths[f"/{wanted}{scope}/{k.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("dryRun", "fieldManager", "fieldValidation", "force")
                    ],
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "kubetune API emulator", "version": "v1"},
            "paths": paths,
            "components": {"schemas": schemas},
        }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _apply(old: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    applied = {k: v for k, v in applied.items() if k != "metadata"} | {
        "metadata": {k: v for k, v in applied.get("metadata", {}).items() if k != "resourceVersion"}
    }
    result: dict[str, Any] = merge_patch(old, applied)
    return result


class EmulatorThread:
    """Serve an `ApiServerEmulator` on 127.0.0.1 from its own thread and event loop."""

    def __init__(self) -> None:
        self.emulator = ApiServerEmulator()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="api-emulator", daemon=True)

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the API emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator, Server(self.emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the emulator's loop (where the store lives) and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def objects(
        self, plural: str, group: str = "kubetune.dev", namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """A snapshot of the stored objects of one resource."""

        def snapshot() -> list[dict[str, Any]]:
            kind = self.emulator.store.kinds.get((group, plural))
            return copy.deepcopy(self.emulator.store.list(kind, namespace)) if kind else []

        result: list[dict[str, Any]] = self.call(snapshot)
        return result

    def kubeconfig(self, path: str) -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "emulator"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "tester", "namespace": "default"},
                }
            ],
            "current-context": "emulator",
        }
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return path
