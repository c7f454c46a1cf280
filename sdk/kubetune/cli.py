"""The `kubetune` command line. Subcommands: `validate` (more arrive with the local runner)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .spec import SpecError, TuningJob


def _validate(args: argparse.Namespace) -> int:
    failed = False
    results = []
    for path in args.files:
        try:
            job = TuningJob.from_yaml(path)
        except SpecError as exc:
            failed = True
            errors = [str(e) for e in exc.errors]
            results.append({"file": path, "valid": False, "errors": errors})
            if not args.json:
                for line in errors:
                    print(f"{path}: {line}")
            continue
        spec = job.spec
        results.append({"file": path, "valid": True, "name": job.name})
        if not args.json:
            print(
                f"{path}: ok (TuningJob {job.name!r}: {spec.algorithm.name}, "
                f"{len(spec.parameters)} parameters, {spec.max_trials} trials)"
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate", help="check TuningJob manifests; one line per problem, exit 1 if any"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print one JSON result")
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
