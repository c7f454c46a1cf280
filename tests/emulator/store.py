"""The emulated API server's object store: versions, selectors, patches, finalizers and GC.

Pure data handling, no HTTP: `Store` keeps every object by (group, plural, namespace, name), bumps
one global resourceVersion on every write, keeps a bounded event log that watches resume from,
and garbage-collects dependents through ownerReferences. The HTTP layer is in `server.py`.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

Key = tuple[str, str]  # (group, plural)
EVENT_LOG = 20000
PROTECTED_METADATA = (
    "uid",
    "creationTimestamp",
    "namespace",
    "name",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
DEFAULT_GRACE = 30  # a pod's terminationGracePeriodSeconds when its spec gives none


class ApiError(Exception):
    """A Kubernetes Status error: HTTP code, reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@dataclass
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # has a /status subresource
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    printer_columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class Event:
    rv: int
    key: Key
    type: str
    obj: dict[str, Any]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def matches_labels(obj: dict[str, Any], selector: str | None) -> bool:
    """Equality/set-based label selectors: a=b, a==b, a!=b, a, !a, a in (x,y), a notin (x)."""
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in _split_terms(selector):
        term = term.strip()
        if " notin " in term or " in " in term:
            name, op, rest = (
                term.partition(" notin ") if " notin " in term else term.partition(" in ")
            )
            values = {v.strip() for v in rest.strip().strip("()").split(",")}
            inside = labels.get(name.strip()) in values
            if inside != (op.strip() == "in"):
                return False
        elif "!=" in term:
            name, _, value = term.partition("!=")
            if labels.get(name.strip()) == value.strip():
                return False
        elif "=" in term:
            name, _, value = term.replace("==", "=").partition("=")
            if labels.get(name.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def matches_fields(obj: dict[str, Any], selector: str | None) -> bool:
    """Field selectors on dotted paths: metadata.name=x, status.phase!=Running."""
    if not selector:
        return True
    for term in _split_terms(selector):
        negate = "!=" in term
        path, _, value = term.replace("==", "=").partition("!=" if negate else "=")
        actual: Any = obj
        for part in path.strip().split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if (str(actual if actual is not None else "") == value.strip()) == negate:
            return False
    return True


def _grace_seconds(kind: Kind, obj: dict[str, Any], requested: int | None) -> int:
    """How long a deleted object may take to terminate: only running pods get a grace period
    (the request's, else their terminationGracePeriodSeconds); everything else goes at once."""
    if (kind.group, kind.plural) != ("", "pods"):
        return 0
    if (obj.get("status") or {}).get("phase") != "Running":
        return 0
    if requested is not None:
        return max(0, requested)
    return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE))


def _with_grace(obj: dict[str, Any], seconds: int) -> dict[str, Any]:
    obj["metadata"]["deletionGracePeriodSeconds"] = seconds
    return obj


def _removable(obj: dict[str, Any]) -> bool:
    """Marked for deletion, no finalizers left and no grace period still running."""
    meta = obj["metadata"]
    return bool(
        meta.get("deletionTimestamp")
        and not meta.get("finalizers")
        and not meta.get("deletionGracePeriodSeconds")
    )


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    return [t for t in [*terms, current] if t.strip()]


class Store:
    def __init__(self) -> None:
        self.kinds: dict[Key, Kind] = {}
        self.objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}
        self.events: list[Event] = []  # consecutive resourceVersions
        self._rv = itertools.count(1)
        self.rv = 0
        self.writes = 0
        self.uids: set[str] = set()
        self.compacted = 0  # no watch resumes from a resourceVersion older than this

    # -- kinds ------------------------------------------------------------------------------
    def add_kind(self, kind: Kind) -> None:
        self.kinds[(kind.group, kind.plural)] = kind
        self.objects.setdefault((kind.group, kind.plural), {})

    def kind(self, group: str, plural: str) -> Kind:
        found = self.kinds.get((group, plural))
        if found is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural})"
            )
        return found

    # -- reads ------------------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects[(kind.group, kind.plural)].get((namespace, name))
        if obj is None:
            group = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            raise ApiError(404, "NotFound", f'{group} "{name}" not found')
        return obj

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        objs = self.objects[(kind.group, kind.plural)]
        return [
            o
            for (ns, _), o in sorted(objs.items())
            if (namespace is None or ns == namespace)
            and matches_labels(o, labels)
            and matches_fields(o, fields)
        ]

    # -- writes -----------------------------------------------------------------------------
    def create(self, kind: Kind, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                )
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        ns = namespace if kind.namespaced else ""
        if kind.namespaced and meta.get("namespace", ns) != ns:
            raise ApiError(
                400, "BadRequest", "the namespace of the object does not match the request"
            )
        if (ns, meta["name"]) in self.objects[(kind.group, kind.plural)]:
            raise ApiError(
                409, "AlreadyExists", f'{kind.plural}.{kind.group} "{meta["name"]}" already exists'
            )
        if kind.namespaced:
            meta["namespace"] = ns
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=now())
        for key in ("resourceVersion", "deletionTimestamp"):
            meta.pop(key, None)
        if kind.status:
            obj.pop("status", None)
        created = self._commit(kind, ns, obj, "ADDED")
        owners = [r.get("uid") for r in meta.get("ownerReferences") or []]
        if owners and not any(uid in self.uids for uid in owners):
            self._remove(kind, ns, created)  # the garbage collector removes orphans at once
        return created

    def update(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        change: Any,
        subresource: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Apply `change(old) -> new` to the object, honouring the status subresource rules;
        `force` (the store's own changes) may also change the protected metadata."""
        ns = namespace if kind.namespaced else ""
        old = self.get(kind, ns, name)
        new = change(copy.deepcopy(old))
        wanted_rv = new.get("metadata", {}).get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.plural}.{kind.group} "{name}": '
                "the object has been modified; please apply your changes to the latest version",
            )
        if kind.status and subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        elif kind.status:
            new["status"] = copy.deepcopy(old.get("status", {}))
            if not old.get("status"):
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for key in () if force else PROTECTED_METADATA:
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        body_changed = {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }
        meta["generation"] = old["metadata"].get("generation", 1) + int(body_changed)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old  # a no-op write does not bump the resourceVersion
        if _removable(new):
            return self._remove(kind, ns, new)
        return self._commit(kind, ns, new, "MODIFIED")

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        if content_type.startswith("application/json-patch+json"):

            def change(old: dict[str, Any]) -> dict[str, Any]:
                try:
                    return jsonpatch.apply_patch(old, patch)  # type: ignore[no-any-return]
                except jsonpatch.JsonPatchTestFailed as exc:
                    raise ApiError(
                        422, "Invalid", f"the server rejected our request: {exc}"
                    ) from exc
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                    raise ApiError(422, "Invalid", str(exc)) from exc

            return self.update(kind, namespace, name, change, subresource)
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "the patch must be a JSON object")
        return self.update(kind, namespace, name, lambda old: merge_patch(old, patch), subresource)

    def delete(
        self, kind: Kind, namespace: str, name: str, grace: int | None = None
    ) -> dict[str, Any]:
        """Delete as the API server does: at once, or only marked (deletionTimestamp) while
        finalizers remain or a running pod is given `grace` seconds to terminate."""
        ns = namespace if kind.namespaced else ""
        obj = self.get(kind, ns, name)
        seconds = _grace_seconds(kind, obj, grace)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            if seconds < meta.get("deletionGracePeriodSeconds", 0):  # a shorter grace wins
                return self.update(kind, ns, name, lambda o: _with_grace(o, seconds), force=True)
            return obj
        if not meta.get("finalizers") and seconds == 0:
            return self._remove(kind, ns, obj)
        marked = copy.deepcopy(obj)
        marked["metadata"]["deletionTimestamp"] = now()
        if seconds:
            marked["metadata"]["deletionGracePeriodSeconds"] = seconds
        return self._commit(kind, ns, marked, "MODIFIED")

    def terminated(self, kind: Kind, namespace: str, name: str) -> None:
        """The kubelet has stopped a deleted pod's containers: the grace period is over."""
        self.update(kind, namespace, name, lambda o: _with_grace(o, 0), force=True)

    # -- internals --------------------------------------------------------------------------
    def _commit(self, kind: Kind, ns: str, obj: dict[str, Any], type_: str) -> dict[str, Any]:
        self.rv = next(self._rv)
        self.writes += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[(kind.group, kind.plural)][(ns, obj["metadata"]["name"])] = obj
        self.uids.add(obj["metadata"]["uid"])
        self._log(Event(self.rv, (kind.group, kind.plural), type_, obj))
        return obj

    def _remove(self, kind: Kind, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[(kind.group, kind.plural)].pop((ns, obj["metadata"]["name"]), None)
        self.uids.discard(obj["metadata"]["uid"])
        self.rv = next(self._rv)
        self.writes += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._log(Event(self.rv, (kind.group, kind.plural), "DELETED", gone))
        self._collect_garbage(obj["metadata"]["uid"])
        return gone

    def _collect_garbage(self, owner_uid: str) -> None:
        """Delete every object whose ownerReferences name `owner_uid` (background cascade)."""
        for key, objs in list(self.objects.items()):
            kind = self.kinds[key]
            for (ns, name), obj in list(objs.items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs) and (ns, name) in objs:
                    self.delete(kind, ns, name)

    def _log(self, event: Event) -> None:
        self.events.append(event)
        if len(self.events) > 2 * EVENT_LOG:
            del self.events[:EVENT_LOG]

    def compact(self) -> None:
        """Forget the event history up to now, as etcd compaction does."""
        self.compacted = self.rv
        self.events.clear()

    def events_since(self, rv: int) -> list[Event] | None:
        """Events after `rv`, or None when the log no longer reaches back that far (410 Gone)."""
        if rv < self.compacted:
            return None
        if not self.events:
            return []
        first = self.events[0].rv
        if rv < first - 1:
            return None
        return self.events[max(0, rv - first + 1) :]
