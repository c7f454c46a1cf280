"""`kubetune-operator`: the kopf operator plus its MetricsService, watching one or more
namespaces or the whole cluster. Flags override the KUBETUNE_* environment settings; both end up
in one `OperatorSettings`, handed to the handlers through kopf's memo."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from .settings import OperatorSettings


def main(argv: list[str] | None = None) -> None:
    try:
        import kopf
    except ImportError:
        raise SystemExit(
            "kubetune-operator needs kopf, which the SDK alone does not install: "
            "pip install 'kubetune[operator]'"
        ) from None
    parser = argparse.ArgumentParser(prog="kubetune-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch the whole cluster"
    )
    parser.add_argument(
        "--suggestion-address", help="host:port of a SuggestionService (default: in-process)"
    )
    parser.add_argument(
        "--metrics-bind", help="where the MetricsService listens (default 0.0.0.0:9090)"
    )
    parser.add_argument("--metrics-address", help="the MetricsService address trial pods dial")
    parser.add_argument(
        "--exporter-bind", help="where Prometheus scrapes /metrics (default 0.0.0.0:8090)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: in-cluster or current)")
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    flags = {
        name: getattr(args, name)
        for name in ("suggestion_address", "metrics_bind", "metrics_address", "exporter_bind")
        if getattr(args, name)
    }
    if args.context:
        flags["kube_context"] = args.context
    settings = dataclasses.replace(OperatorSettings.from_env(), **flags)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # "Handler ... succeeded" for every watch event: costly at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    from . import handlers  # noqa: F401  (registers the handlers)

    namespaces = args.namespace or ([] if args.all_namespaces else [settings.namespace])
    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(settings=settings),  # the handlers' settings (handlers.settings_of)
    )


if __name__ == "__main__":
    main()
