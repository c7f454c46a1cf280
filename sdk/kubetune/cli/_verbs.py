"""The CLI verbs over `kubetune.Client`: submit, get, list, status, trials, best, wait, logs, plot,
report, dashboard, convert, update, delete. `--workdir DIR` picks the local backend (a root of jobs, or one job's directory);
otherwise the cluster of the kubeconfig (`--context`, `-n`). Same tables, same `--json`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..client import Client
from ..client._errors import UsageError
from ..client._types import JobStatus, objective_text, to_json


def add_commands(commands: Any) -> None:
    """Register the verbs on the `kubetune` sub-command parser."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("where the jobs are")
    where.add_argument("--workdir", help="local runs: a root of job directories, or one job's")
    where.add_argument("--context", help="kubeconfig context (default: the current one)")
    where.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def verb(name: str, handler: Any, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    submit = verb("submit", _submit, "create a TuningJob (on the cluster, or run it locally)")
    submit.add_argument("-f", "--file", required=True, metavar="FILE", help="the manifest")
    submit.add_argument("--wait", action="store_true", help="show progress until it finishes")
    submit.add_argument("--timeout", type=float, help="seconds to wait (with --wait)")
    listing = verb("list", _list, "list TuningJobs")
    listing.add_argument("-l", "--selector", help="label selector, e.g. team=vision")
    for name, handler, text in (
        ("get", _get, "one job's phase, progress and best trial"),
        ("status", _status, "a job's status and its trials"),
        ("trials", _trials, "a job's trials: params, state, objective"),
        ("best", _best, "the best trial of a job"),
        ("delete", _delete, "delete a job with its trials, pods and state"),
    ):
        verb(name, handler, text).add_argument("name", metavar="NAME", nargs="?")
    waiting = verb("wait", _wait, "wait for a job to finish (exit 1 if it failed)")
    waiting.add_argument("name", metavar="NAME", nargs="?")
    waiting.add_argument("--timeout", type=float, help="give up after this many seconds")
    logs = verb("logs", _logs, "print a trial's log")
    logs.add_argument("trial", metavar="TRIAL")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    logs.add_argument("--job", help="the trial's job (local runs; found by default)")
    plot = verb("plot", _plot, "PNGs: history, learning curves, parallel coordinates, slices")
    plot.add_argument("name", metavar="NAME", nargs="?")
    plot.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="directory (default: the job's work directory/plots, or .kubetune/plots/NAME)",
    )
    report = verb("report", _report, "one self-contained HTML file of a job's charts and trials")
    report.add_argument("name", metavar="NAME", nargs="?")
    report.add_argument("--html", required=True, metavar="FILE", help="where to write it")
    board = verb("dashboard", _dashboard, "serve live pages of the jobs in a browser")
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    board.add_argument("--port", type=int, default=8686, help="(default: 8686; 0: any free port)")
    board.add_argument("--open", action="store_true", help="open it in a web browser")
    convert = verb("convert", _convert, "convert another tool's experiment to a TuningJob")
    convert.add_argument("source", choices=["katib"], help="the format: katib (v1beta1)")
    convert.add_argument("file", metavar="FILE", help="the Experiment's YAML ('-': stdin)")
    convert.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    convert.add_argument(
        "--apply", action="store_true", help="submit it too (only if it converted fully)"
    )
    update = verb("update", _update, "change the budget of a running job")
    update.add_argument("name", metavar="NAME", nargs="?")
    update.add_argument("--max-trials", type=int)
    update.add_argument("--parallelism", type=int)
    update.add_argument("--max-failed-trials", type=int)


def _convert(args: argparse.Namespace) -> int:
    """Write the TuningJob; list what did not convert (path: reason) on stderr and exit 1."""
    from ..convert import convert_experiment, render
    from ..spec import SpecError, TuningJob, load_yaml_documents

    source = "stdin" if args.file == "-" else args.file
    if args.file == "-":
        from ..spec._yaml import load_documents

        docs = load_documents(sys.stdin.read(), "stdin")
    else:
        docs = load_yaml_documents(args.file)
    experiments = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Experiment"]
    conversion = convert_experiment(
        experiments[0] if len(experiments) == 1 else (docs or [None])[0]
    )
    if len(experiments) > 1:
        conversion.problems.insert(0, ("kind", f"{len(experiments)} Experiments; give one a file"))
    problems = list(conversion.problems)
    if conversion.manifest and not problems:
        try:
            TuningJob.parse(conversion.manifest, source)
        except SpecError as exc:
            problems += [(e.path, f"the converted TuningJob: {e.message}") for e in exc.errors]
    text = render(conversion, source) if conversion.manifest else ""
    if args.output and text:
        Path(args.output).write_text(text)
    elif text and not args.json:
        sys.stdout.write(text)
    for path, reason in problems:
        print(f"{source}: {path}: {reason}", file=sys.stderr)
    name = None
    if args.apply and not problems:
        name = _client(args).submit(args.output or conversion.manifest)
        print(f"tuningjob {name} created", file=sys.stderr)
    if args.json:
        _print_json(
            {
                "manifest": conversion.manifest or None,
                "notes": {".".join(map(str, k)): v for k, v in conversion.notes.items()},
                "problems": [{"path": p, "reason": r} for p, r in problems],
                "submitted": name,
            }
        )
    return 1 if problems else 0


def _client(args: argparse.Namespace) -> Client:
    """The backend the flags name; with none, a job directory the command runs in is local."""
    from ..client._local import STATE_FILE

    if args.workdir is not None:
        return Client(workdir=args.workdir, context=args.context, namespace=args.namespace)
    if not (args.context or args.namespace) and Path(STATE_FILE).is_file():
        return Client(workdir=".")
    return Client(context=args.context, namespace=args.namespace)


def _name(args: argparse.Namespace, client: Client) -> str:
    """The NAME argument; locally it may be left out when the directory holds one job."""
    if args.name:
        return str(args.name)
    only = client.backend.only_job()
    if only is None:
        raise UsageError(f"{args.command} needs the job's NAME")
    return only


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _console() -> Any:
    from rich.console import Console

    return Console()


def _submit(args: argparse.Namespace) -> int:
    client = _client(args)
    name = client.submit(args.file)
    if not args.wait:
        if args.json:
            _print_json({"name": name})
        else:
            print(f"tuningjob {name} created{client.backend.place()}")
        return 0
    final = client.wait(name, timeout=args.timeout, progress=not args.json)
    return _finished(final, args)


def _wait(args: argparse.Namespace) -> int:
    client = _client(args)
    final = client.wait(_name(args, client), timeout=args.timeout, progress=not args.json)
    return _finished(final, args)


def _finished(final: JobStatus, args: argparse.Namespace) -> int:
    if args.json:
        _print_json(to_json(final))
    else:
        outcome = "succeeded" if final.succeeded else "failed"
        print(f"job {final.name} {outcome} ({final.reason}): {final.message}")
        if final.best is not None:
            params = " ".join(f"{k}={v}" for k, v in final.best.params.items())
            value = objective_text(final.best.objective)
            print(f"best {final.best.name}  {final.metric}={value}  {params}")
    return 0 if final.succeeded else 1


def _get(args: argparse.Namespace) -> int:
    from ._tables import jobs_table

    client = _client(args)
    status = client.get(_name(args, client))
    if args.json:
        _print_json(to_json(status))
    else:
        console = _console()
        console.print(jobs_table([status], console.width))
    return 0


def _list(args: argparse.Namespace) -> int:
    from ._tables import jobs_table

    jobs = _client(args).list(args.selector)
    if args.json:
        _print_json(to_json(jobs))
    elif jobs:
        console = _console()
        console.print(jobs_table(jobs, console.width))
    else:
        print("no TuningJobs", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from ._tables import status_view

    client = _client(args)
    name = _name(args, client)
    status, trials = client.get(name), client.trials(name)
    if args.json:
        _print_json({"status": to_json(status), "trials": to_json(trials)})
    else:
        console = _console()
        console.print(status_view(status, trials, console.width, client.logs_command()))
    return 0


def _trials(args: argparse.Namespace) -> int:
    from ._tables import trials_table

    client = _client(args)
    name = _name(args, client)
    trials = client.trials(name)
    if args.json:
        _print_json(to_json(trials))
        return 0
    status = client.get(name)
    console = _console()
    console.print(trials_table(trials, status.metric, console.width, logs=client.logs_command()))
    return 0


def _best(args: argparse.Namespace) -> int:
    client = _client(args)
    status = client.get(_name(args, client))
    if status.pareto_front is not None:
        return _front(args, status)
    best = status.best
    if best is None:
        print(f"no trial of {status.name} has reported {status.metric} yet", file=sys.stderr)
        return 1
    if args.json:
        _print_json(best.model_dump(mode="json"))
    else:
        params = " ".join(f"{k}={v}" for k, v in best.params.items())
        print(f"{best.name}  {status.metric}={objective_text(best.objective)}  {params}")
    return 0


def _front(args: argparse.Namespace, status: JobStatus) -> int:
    from ._tables import front_table

    front = status.pareto_front or []
    if args.json:
        _print_json([t.model_dump(mode="json") for t in front])
        return 0 if front else 1
    if not front:
        print(
            f"no feasible trial of {status.name} has reported every objective yet", file=sys.stderr
        )
        return 1
    print(front_table(status), end="")
    return 0


def _logs(args: argparse.Namespace) -> int:
    for line in _client(args).logs(args.trial, follow=args.follow, job=args.job):
        print(line, flush=args.follow)
    return 0


def _plot(args: argparse.Namespace) -> int:
    client = _client(args)
    name = _name(args, client)
    paths = client.plot(name, args.output)
    if args.json:
        _print_json([str(p) for p in paths])
    else:
        print("\n".join(str(p) for p in paths))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..dashboard import write_report

    client = _client(args)
    path = write_report(client, _name(args, client), args.html)
    if args.json:
        _print_json({"path": str(path)})
    else:
        print(path)
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from ..dashboard import serve

    client = _client(args)

    def ready(url: str) -> None:
        if args.json:
            print(json.dumps({"url": url}), flush=True)
        else:
            print(f"kubetune dashboard of {client.backend.describe()} at {url} (Ctrl-C stops it)")
            sys.stdout.flush()

    try:
        serve(client, args.host, args.port, args.open, ready)
    except KeyboardInterrupt:
        return 0
    return 0


def _update(args: argparse.Namespace) -> int:
    client = _client(args)
    name = _name(args, client)
    status = client.update(
        name,
        max_trials=args.max_trials,
        parallelism=args.parallelism,
        max_failed_trials=args.max_failed_trials,
    )
    if args.json:
        _print_json(to_json(status))
    else:
        print(f"tuningjob {name}: maxTrials {status.max_trials}, parallelism {status.parallelism}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    client = _client(args)
    name = _name(args, client)
    client.delete(name)
    if args.json:
        _print_json({"name": name, "deleted": True})
    else:
        print(f"tuningjob {name} deleted")
    return 0
