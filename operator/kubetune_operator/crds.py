"""CustomResourceDefinitions for TuningJob and Trial, generated from the pydantic spec models.

`python -m kubetune_operator.crds [ROOT] [--helm PATH]` (or `make crds`) writes every copy:
manifests/crds/ and the Helm chart's files/ (with the operator's RBAC rules), then what the chart
renders (`render.py`: manifests/install.yaml, manifests/monitoring/); a test fails when any copy
differs. Pydantic's JSON schema is turned into a Kubernetes
structural schema: $refs inlined, unions merged, free-form parts marked
x-kubernetes-preserve-unknown-fields, field descriptions kept for `kubectl explain`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from kubetune.spec import TrialSpec, TrialStatus, TuningJobSpec, TuningJobStatus
from pydantic import BaseModel

from .rbac import operator_rules
from .render import rendered

GROUP = "kubetune.dev"
VERSION = "v1alpha1"
KEEP = (
    "description",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "format",
)
FREE = {"x-kubernetes-preserve-unknown-fields": True}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema equivalent (as far as CRDs can say) to a JSON schema."""
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = structural(target, defs)
        if "description" in schema:
            merged["description"] = schema["description"]
        return merged
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        concrete = [v for v in variants if v.get("type") != "null"]
        out = _merge([structural(v, defs) for v in concrete])
        if len(concrete) < len(variants):
            out["nullable"] = True
        if "description" in schema:
            out["description"] = schema["description"]
        return out
    out = {k: schema[k] for k in KEEP if k in schema}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if "exclusiveMinimum" in schema:
        out["minimum"], out["exclusiveMinimum"] = schema["exclusiveMinimum"], True
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        out["type"] = "object"
        props = schema.get("properties")
        if props:
            out["properties"] = {k: structural(v, defs) for k, v in props.items()}
            if schema.get("required"):
                out["required"] = list(schema["required"])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs)
        elif not props:
            out.update(FREE)
        return out
    if kind == "array":
        out["type"] = "array"
        out["items"] = structural(schema.get("items", {}), defs)
        return out
    if kind in ("string", "integer", "number", "boolean"):
        out["type"] = kind
        return out
    out.update(FREE)
    return out


def _merge(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema accepting every variant: objects merge properties, numbers widen."""
    if len(variants) == 1:
        return variants[0]
    kinds = {v.get("type") for v in variants}
    if kinds == {"object"}:
        props: dict[str, Any] = {}
        for v in variants:
            for name, prop in v.get("properties", {}).items():
                if name in props and "enum" in props[name] and "enum" in prop:
                    merged = [*props[name]["enum"], *prop["enum"]]
                    props[name] = {**props[name], "enum": list(dict.fromkeys(merged))}
                elif name in props:
                    props[name] = _merge([props[name], prop]) if props[name] != prop else prop
                else:
                    props[name] = prop
        required = set.intersection(*(set(v.get("required", [])) for v in variants))
        out: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            out["required"] = sorted(required)
        return out
    if kinds <= {"integer", "number"}:
        return {"type": "number"}
    return dict(FREE)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return structural(raw, raw.get("$defs", {}))


def _crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    root = {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }
    names: dict[str, Any] = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "categories": ["kubetune"],
    }
    if short:
        names["shortNames"] = short
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _column(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, **extra}


AGE = _column("Age", ".metadata.creationTimestamp", "date")


def tuningjob_crd() -> dict[str, Any]:
    columns = [
        _column("Phase", ".status.phase"),
        _column("Trials", ".status.progress", description="finished / maxTrials"),
        _column("Running", ".status.trials.running", "integer"),
        _column("Best", ".status.bestTrial.objective", "number"),
        _column(
            "Front",
            ".status.paretoFrontSize",
            "integer",
            description="trials on the Pareto front (several objectives)",
        ),
        AGE,
    ]
    return _crd(
        "TuningJob",
        "tuningjobs",
        ["tj"],
        _schema(TuningJobSpec),
        _schema(TuningJobStatus),
        columns,
        "A hyperparameter search: objective, space, algorithm and trial template.",
    )


def trial_crd() -> dict[str, Any]:
    columns = [
        _column("Phase", ".status.phase"),
        _column("Objective", ".status.objective", "number"),
        _column("Params", ".status.paramsSummary"),
        AGE,
    ]
    return _crd(
        "Trial",
        "trials",
        [],
        _schema(TrialSpec),
        _schema(TrialStatus),
        columns,
        "One training run of a TuningJob, owning one Pod.",
    )


def render() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    header = (
        "# Generated by `make crds` from the pydantic models in sdk/kubetune/spec. Do not edit.\n"
    )
    return {
        "tuningjobs.kubetune.dev.yaml": header + yaml.safe_dump(tuningjob_crd(), sort_keys=False),
        "trials.kubetune.dev.yaml": header + yaml.safe_dump(trial_crd(), sort_keys=False),
    }


def generated(root: Path) -> dict[Path, str]:
    """Every generated copy under the repository `root`: path -> text.

    The CRDs go to manifests/crds/ (for `kubectl apply -f`) and into the chart, with the
    operator's RBAC rules; the chart renders manifests/install.yaml from them (`make crds`).
    """
    chart = root / "charts" / "kubetune" / "files"
    out = {}
    for name, text in render().items():
        out[root / "manifests" / "crds" / name] = text
        out[chart / "crds" / name] = text
    out[chart / "operator-rules.yaml"] = (
        "# Generated by `make crds` from kubetune_operator.rbac. Do not edit.\n"
        + yaml.safe_dump(operator_rules(), sort_keys=False)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubetune_operator.crds", description="Write every generated copy."
    )
    parser.add_argument("root", nargs="?", default=".", help="the repository (default: here)")
    parser.add_argument(
        "--helm", help="a helm binary: also render install.yaml and the monitoring bundle"
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    files = generated(root)
    _write(files)  # the chart includes the CRDs and rules: write them before rendering it
    if args.helm:
        _write(rendered(args.helm, root))
    return 0


def _write(files: dict[Path, str]) -> None:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)


if __name__ == "__main__":
    sys.exit(main())
