"""The operator's settings, in one object: the KUBETUNE_* environment, then `kubetune-operator`'s
flags on top. Each name means one setting: the separate suggestion service (`kubetune-suggestion`)
reads KUBETUNE_SUGGESTION_BIND and KUBETUNE_SUGGESTION_WORKERS, never the operator's
KUBETUNE_SUGGESTION_ADDRESS (where the operator dials it) or KUBETUNE_WORKERS (reconciles)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorSettings:
    suggestion_address: str | None = None  # None: serve the SuggestionService in-process
    metrics_bind: str = "0.0.0.0:9090"
    metrics_address: str | None = None  # what trial pods dial; default: this pod's address
    status_interval: float = 0.5  # how often reported metrics are written to Trial status
    status_writes_per_second: float = 200.0  # report-driven status writes, all trials together
    workers: int = 4  # jobs reconciled at once
    suggestion_timeout: float = 60.0
    max_backoff: float = 30.0
    kube_context: str | None = None  # kubeconfig context; None: in-cluster or the current one
    api_workers: int = 8  # threads making Kubernetes API calls at once
    suggestion_token_file: str | None = None  # the shared token of a remote SuggestionService
    exporter_bind: str = "0.0.0.0:8090"  # where Prometheus scrapes /metrics
    trainer_image: str | None = None  # for trial containers whose template names no image
    trainer_pull_policy: str | None = None
    collector_image: str | None = None  # the file collector's sidecar (the operator's image)
    namespace: str = "default"  # watched when no -n or -A is given

    @classmethod
    def from_env(cls) -> OperatorSettings:
        env = os.environ
        return cls(
            suggestion_address=env.get("KUBETUNE_SUGGESTION_ADDRESS") or None,
            metrics_bind=env.get("KUBETUNE_METRICS_BIND", cls.metrics_bind),
            metrics_address=env.get("KUBETUNE_METRICS_ADDRESS") or None,
            status_interval=float(env.get("KUBETUNE_STATUS_INTERVAL", cls.status_interval)),
            status_writes_per_second=float(
                env.get("KUBETUNE_STATUS_WRITES_PER_SECOND", cls.status_writes_per_second)
            ),
            workers=int(env.get("KUBETUNE_WORKERS", cls.workers)),
            suggestion_timeout=float(
                env.get("KUBETUNE_SUGGESTION_TIMEOUT", cls.suggestion_timeout)
            ),
            max_backoff=float(env.get("KUBETUNE_MAX_BACKOFF", cls.max_backoff)),
            kube_context=env.get("KUBETUNE_KUBE_CONTEXT") or None,
            api_workers=int(env.get("KUBETUNE_API_WORKERS", cls.api_workers)),
            suggestion_token_file=env.get("KUBETUNE_SUGGESTION_TOKEN_FILE") or None,
            exporter_bind=env.get("KUBETUNE_EXPORTER_BIND", cls.exporter_bind),
            trainer_image=env.get("KUBETUNE_TRAINER_IMAGE") or None,
            trainer_pull_policy=env.get("KUBETUNE_TRAINER_PULL_POLICY") or None,
            collector_image=env.get("KUBETUNE_COLLECTOR_IMAGE") or None,
            namespace=env.get("KUBETUNE_NAMESPACE") or cls.namespace,
        )

    def advertised_metrics_address(self, bound_port: int) -> str:
        if self.metrics_address:
            return self.metrics_address
        host = self.metrics_bind.rsplit(":", 1)[0]
        if host in ("", "0.0.0.0", "[::]"):
            host = os.environ.get("POD_IP") or socket.gethostbyname(socket.gethostname())
        return f"{host}:{bound_port}"
