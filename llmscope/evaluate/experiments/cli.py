"""``llmscope experiment run|show|export``: try a fix on a problem cluster, read the verdict.

``run`` checks everything first (the cluster, each SPEC, the evaluators, that the records hold
what the variants need): a problem exits 2 with one line and nothing is called or stored. It
then replays the records through an in-process gateway built from ``--config`` (else
``LLMSCOPE_GATEWAY_CONFIG``), so every replay and judge call is recorded as an internal call.
``show`` prints a stored experiment's report; ``export`` writes a cluster's records or an
experiment's answers as a dataset (``llmscope.evaluate.experiments.export``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmscope.cli import UsageError, add_database_url, prepare_store, settings_from

if TYPE_CHECKING:
    from llmscope.collector.gateway.evaluators import Evaluator


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    experiment = subparsers.add_parser(
        "experiment", help="replay a problem cluster with a candidate fix and compare"
    )
    sub = experiment.add_subparsers(dest="experiment_command", metavar="ACTION")
    sub.required = True
    run = sub.add_parser("run", help="run an experiment on a cluster's records")
    run.add_argument("--cluster", metavar="ID", type=int, required=True, help="cluster id")
    run.add_argument("--run", metavar="RUN_ID", default="latest", help="analysis run (latest)")
    run.add_argument(
        "--variant",
        metavar="SPEC",
        action="append",
        required=True,
        help="template=NAME@VERSION, template-file=PATH (a regular UTF-8 file of at most "
        "256 KiB), endpoint=NAME, param.NAME=VALUE (comma-separated; repeatable)",
    )
    run.add_argument(
        "--evaluator", metavar="NAME", action="append", help="only this evaluator (repeatable)"
    )
    run.add_argument("--sample", metavar="N", type=int, default=100, help="records (100)")
    run.add_argument(
        "--config", metavar="YAML", help="gateway YAML (default: $LLMSCOPE_GATEWAY_CONFIG)"
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    add_database_url(run)
    run.set_defaults(handler=run_command)

    show = sub.add_parser("show", help="print a stored experiment's report")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the report as JSON")
    add_database_url(show)
    show.set_defaults(handler=show_command)

    from llmscope.evaluate.experiments.export import register_export

    register_export(sub)


def _config(args: argparse.Namespace, settings: Any) -> tuple[Path, Any]:
    from llmscope.collector.gateway.config import ConfigError, load_config

    path = Path(args.config) if args.config else settings.gateway_config
    if path is None:
        raise UsageError("--config: no gateway YAML given and LLMSCOPE_GATEWAY_CONFIG is unset")
    if not path.is_file():
        raise UsageError(f"--config: no such file: {path}")
    try:
        return path, load_config(path)
    except ConfigError as exc:
        raise UsageError(f"--config: {exc}") from None


def _evaluators(config: Any, path: Path, names: list[str] | None) -> list[Evaluator]:
    from llmscope.evaluate.experiments.spec import SpecError, select_evaluators

    try:
        return select_evaluators(config, names, str(path))
    except SpecError as exc:
        message = str(exc)
        raise UsageError(message if message.startswith("--") else f"--config: {message}") from None


def run_command(args: argparse.Namespace) -> int:
    from llmscope.collector.masking import sessionmaker_for
    from llmscope.db import make_engine
    from llmscope.evaluate.experiments.dataset import DatasetError
    from llmscope.evaluate.experiments.runner import plan
    from llmscope.evaluate.experiments.spec import SpecError, parse
    from llmscope.evaluate.experiments.template_file import read_template_file

    if args.sample <= 0:
        raise UsageError("--sample: must be a positive number of records")
    settings = settings_from(args)
    path, config = _config(args, settings)
    evaluators = _evaluators(config, path, args.evaluator)
    try:
        # the CLI's own files are read here, before anything is called or stored
        variants = [
            parse(str(i), spec, config, read_template_file)
            for i, spec in enumerate(args.variant, 1)
        ]
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    prepare_store(settings)
    engine = make_engine(settings.database_url)
    try:
        with sessionmaker_for(engine, settings)() as session:
            ready = plan(
                session,
                config,
                cluster_id=args.cluster,
                run=args.run,
                variants=variants,
                evaluators=evaluators,
                sample=args.sample,
            )
    except (SpecError, DatasetError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        engine.dispose()
    report = asyncio.run(_execute(settings, path, ready))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(describe(report))
    if report.get("stopped"):
        print(f"llmscope experiment: {report['stopped']}", file=sys.stderr)
    return 0


async def _execute(settings: Any, path: Path, ready: Any) -> dict[str, Any]:
    from llmscope.collector.gateway.service import Gateway
    from llmscope.collector.ingest import Recorder, RecordWriter
    from llmscope.collector.masking import sessionmaker_for
    from llmscope.db import make_engine
    from llmscope.evaluate.experiments.runner import execute

    engine = make_engine(settings.database_url)
    factory = sessionmaker_for(engine, settings)
    recorder = Recorder(factory, spool_dir=settings.data_dir / "spool")
    recorder.start()
    gateway = Gateway(path, RecordWriter.from_settings(settings, recorder))
    try:
        await gateway.start()
        report = await execute(
            ready,
            factory,
            gateway,
            concurrency=settings.experiment_concurrency,
            max_tokens=settings.experiment_max_tokens,
            progress=_progress if sys.stderr.isatty() else None,
        )
    finally:
        await gateway.stop()
        recorder.stop()  # the replays' and judges' internal records reach the store
        engine.dispose()
    return report.to_json()


def _progress(state: Any) -> None:
    end = "\n" if state.done == state.total else ""
    print(f"\ranswered and judged {state.done}/{state.total}", end=end, file=sys.stderr)


def show_command(args: argparse.Namespace) -> int:
    from llmscope.collector.masking import sessionmaker_for
    from llmscope.db import make_engine
    from llmscope.evaluate.experiments.export import load_report

    settings = settings_from(args)
    prepare_store(settings)
    engine = make_engine(settings.database_url)
    try:
        with sessionmaker_for(engine, settings)() as session:
            report = load_report(session, args.id)
    finally:
        engine.dispose()
    if report is None:
        raise UsageError(f"no experiment {args.id!r}")
    data = report.to_json()
    print(json.dumps(data, indent=2) if args.json else describe(data))
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def describe(report: dict[str, Any]) -> str:
    """The report in a few lines for people."""
    base = report["baseline"]
    lines = [
        f"experiment {report['id']} ({report['status']}): cluster {report['cluster_id']} of run "
        f"{report['run_id']}, {report['records']} records, evaluators "
        f"{', '.join(report['evaluators'])}",
        f"  baseline: pass {_pct(base['pass_rate'])}, score {_num(base['mean_score'])}, "
        f"p50 {_num(base['latency_p50'], 0)} ms, {base['tokens']} tokens",
    ]
    for v in report["variants"]:
        ci = v["ci"]
        interval = "" if ci is None else f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] pts"
        verdict = v["verdict"]
        if v["needed_sample"]:
            verdict += f" (about {v['needed_sample']} records would tell)"
        lines.append(
            f"  variant {v['name']} ({v['spec']}): pass {_pct(v['pass_rate'])}, score "
            f"{_num(v['mean_score'])}, p50 {_num(v['latency_p50'], 0)} ms, {v['tokens']} tokens"
            f", {v['errors']} errors, {v['reused']} reused"
        )
        p = "n/a" if v["p_value"] is None else f"{v['p_value']:.3g}"
        lines.append(f"    {verdict}: McNemar p={p}{interval}")
    return "\n".join(lines)
