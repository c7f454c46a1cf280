"""Authentication and RBAC for the emulated API server, as far as the tests need them.

Bearer tokens map to users; a token the emulator does not know is the cluster admin (kubectl in
the tests), unless `valid_tokens` is set, when it gets 401. A service account's requests are
authorized by the (Cluster)Roles bound to it in the store, with the API server's verb mapping;
discovery, /version and /openapi are open to everyone, as `system:discovery` grants them.
Every authorized request of a service account is recorded as (group, resource, verb).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .store import ApiError, Store

Access = tuple[str, str, str]  # (api group, resource[/subresource], verb)


def verb_of(method: str, name: str | None, params: dict[str, str]) -> str:
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    collection = {"POST": "create", "DELETE": "deletecollection"}
    single = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    return (single if name else collection).get(method, method.lower())


def rule_allows(rule: dict[str, Any], access: Access) -> bool:
    group, resource, verb = access
    return (
        bool({group, "*"} & set(rule.get("apiGroups", [])))
        and bool({resource, "*"} & set(rule.get("resources", [])))
        and bool({verb, "*"} & set(rule.get("verbs", [])))
    )


@dataclass
class Authorizer:
    users: dict[str, str] = field(default_factory=dict)  # token -> system:serviceaccount:NS:NAME
    valid_tokens: set[str] | None = None  # when set, other tokens get 401
    used: dict[str, set[Access]] = field(default_factory=dict)  # user -> what it did
    denied: list[tuple[str, Access, str | None]] = field(default_factory=list)

    def check(
        self, store: Store, headers: dict[str, str], access: Access, namespace: str | None
    ) -> None:
        token = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if self.valid_tokens is not None and token not in self.valid_tokens:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        user = self.users.get(token)
        if user is None:
            return  # the admin
        if not any(rule_allows(r, access) for r in self.rules(store, user, namespace)):
            self.denied.append((user, access, namespace))
            group, resource, verb = access
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
                f'in API group "{group}"'
                + (f' in the namespace "{namespace}"' if namespace else ""),
            )
        self.used.setdefault(user, set()).add(access)

    def rules(self, store: Store, user: str, namespace: str | None) -> Iterable[dict[str, Any]]:
        _, _, sa_ns, sa_name = user.split(":")
        subject = {"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns}
        rbac = "rbac.authorization.k8s.io"
        bindings = list(store.objects[(rbac, "clusterrolebindings")].values())
        if namespace:
            bindings += [
                b for (ns, _), b in store.objects[(rbac, "rolebindings")].items() if ns == namespace
            ]
        for binding in bindings:
            if not any(
                all(s.get(k) == v for k, v in subject.items()) for s in binding.get("subjects", [])
            ):
                continue
            ref = binding["roleRef"]
            if ref["kind"] == "ClusterRole":
                role = store.objects[(rbac, "clusterroles")].get(("", ref["name"]))
            else:
                ns = binding["metadata"]["namespace"]
                role = store.objects[(rbac, "roles")].get((ns, ref["name"]))
            yield from (role or {}).get("rules", [])
