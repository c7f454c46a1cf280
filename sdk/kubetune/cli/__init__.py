"""The `kubetune` command line: validate manifests, run a job locally, and submit, watch and
inspect jobs on a cluster or in a work directory.

Exit codes: 0 ok; 1 the job failed, or an error (one line on stderr); 2 a wrong command line."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ..client._errors import UsageError
from ..spec import FieldError, SpecError, TuningJob


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


def _workdir(args: argparse.Namespace, job: TuningJob | None) -> Path:
    if args.workdir:
        path = Path(args.workdir)
    elif job is None:
        raise UsageError("give a manifest FILE or --workdir")
    else:
        path = Path(".kubetune") / job.name
    if path.exists() and not path.is_dir():
        raise UsageError(f"--workdir {path}: not a directory")
    return path


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..local import JobMismatch, LocalRunner
    from ._live import LiveView, result_json, summary
    from ._tables import warm_text

    try:
        job = TuningJob.from_yaml(args.file)
        if job.spec.trial_template is None:
            raise SpecError([FieldError("spec.trialTemplate", "required to run trials")], args.file)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    workdir = _workdir(args, job)
    console = Console(stderr=args.json)
    view = LiveView(console, workdir)
    try:
        runner = LocalRunner(
            job,
            Path(args.base_dir or Path(args.file).resolve().parent),
            workdir,
            grace=args.grace,
            on_update=None if args.json else view,
            log_limit=args.max_log_bytes,
        )
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    for skipped in runner.warm_skipped:
        print(f"warm start: left out {skipped}", file=sys.stderr)
    if runner.warm_status is not None:
        print(warm_text(runner.warm_status), file=sys.stderr)
    endpoint = None
    if args.metrics_port is not None:
        try:
            endpoint = runner.telemetry.serve(args.metrics_host, args.metrics_port)
        except OSError as exc:
            print(f"kubetune: --metrics-port {args.metrics_port}: {exc.strerror}", file=sys.stderr)
            return 1
        url = f"http://{args.metrics_host}:{endpoint.port}/metrics"
        print(f"Prometheus metrics at {url}", file=sys.stderr, flush=True)
    try:
        if args.json:
            result = runner.run()
        else:
            with view:
                result = runner.run()
    except JobMismatch as exc:
        print(f"kubetune: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(
            f"\n{signal.Signals(signum).name}: every trial process was stopped and its state "
            f"recorded. Resume: {resume_command(args)}",
            file=sys.stderr,
        )
        return 128 + signum
    finally:
        if endpoint is not None:
            endpoint.close()
    if args.json:
        print(result_json(result))
    else:
        console.print(summary(result), soft_wrap=True)
    return 0 if result.succeeded else 1


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this run: the same verb, file and flags."""
    return shlex.join(["kubetune", *args.argv])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kubetune")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetune", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kubetune {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate", help="check TuningJob manifests; one line per problem, exit 1 if any"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print one JSON result")
    validate.set_defaults(handler=_validate)

    run = commands.add_parser("run", help="tune a TuningJob on this machine (trials as processes)")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--workdir", help="state and logs (default: ./.kubetune/<job name>)")
    run.add_argument("--json", action="store_true", help="no live table; print one JSON result")
    run.add_argument("--grace", type=float, default=10.0, help="seconds from SIGTERM to SIGKILL")
    run.add_argument("--base-dir", help=argparse.SUPPRESS)  # where relative paths start
    run.add_argument(
        "--max-log-bytes",
        type=int,
        default=64 * 1024 * 1024,
        metavar="N",
        help="a trial's log is rotated at N bytes; one older file is kept (default: 64 MiB)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics of the run at http://HOST:PORT/metrics (0: any free port)",
    )
    run.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST", help="(default: 127.0.0.1)"
    )
    run.set_defaults(handler=_run)

    from ._verbs import add_commands

    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every input or environment problem is one line on stderr, exit 2 for
    a wrong command line and 1 for the rest, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    from ..client import ClientError
    from ..local import JobMismatch

    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except UsageError as exc:
        return _failed(args, f"kubetune: {exc}", 2, exc)
    except SpecError as exc:
        return _failed(args, str(exc), 1, exc)
    except (JobMismatch, ClientError) as exc:
        return _failed(args, f"kubetune: {exc}", 1, exc)
    except BrokenPipeError:  # `kubetune trials --json | head`: the reader has gone, so be quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _failed(args, f"kubetune: {exc.strerror or exc}{where}", 1, exc)
    return code


def _failed(args: argparse.Namespace, message: str, code: int, exc: Exception) -> int:
    """Report an error: on stderr, and with --json also as JSON on stdout for scripts."""
    print(message, file=sys.stderr)
    if getattr(args, "json", False):
        error: dict[str, object] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, SpecError):
            error["errors"] = [str(e) for e in exc.errors]
        print(json.dumps({"error": error}, indent=2))
    return code
