"""``llmscope evaluate``: judge the sampled records of a time range with the configured evaluators.

The evaluators come from the ``evaluators:`` section of the gateway YAML (``--config``, else
``LLMSCOPE_GATEWAY_CONFIG``); a judge is called through an in-process gateway built from the
same file, so its calls are recorded as internal calls in the store. Only records lacking a
verdict for an evaluator's current version are judged: a second run calls no judge. A judge
that cannot be reached, or the day's token budget, stops judging with a message; the run
itself still succeeds and what is left stays pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmscope.cli import UsageError, add_database_url, prepare_store, settings_from

if TYPE_CHECKING:
    from llmscope.collector.gateway.evaluators import Evaluator


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    evaluate = subparsers.add_parser(
        "evaluate", help="judge sampled records with the configured evaluators"
    )
    evaluate.add_argument("--since", metavar="T", type=timestamp, help="RFC 3339, inclusive")
    evaluate.add_argument("--until", metavar="T", type=timestamp, help="RFC 3339, exclusive")
    evaluate.add_argument(
        "--evaluator",
        metavar="NAME",
        action="append",
        help="only this evaluator (repeatable; default: all of them)",
    )
    evaluate.add_argument(
        "--config",
        metavar="YAML",
        help="gateway YAML with evaluators: (default: $LLMSCOPE_GATEWAY_CONFIG)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_database_url(evaluate)
    evaluate.set_defaults(handler=evaluate_command)


def timestamp(text: str) -> datetime:
    """argparse type: an RFC 3339 time; no offset means UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def evaluate_command(args: argparse.Namespace) -> int:
    from llmscope.collector.gateway.config import ConfigError, load_config

    settings = settings_from(args)
    path = Path(args.config) if args.config else settings.gateway_config
    if path is None:
        raise UsageError("--config: no gateway YAML given and LLMSCOPE_GATEWAY_CONFIG is unset")
    if not path.is_file():
        raise UsageError(f"--config: no such file: {path}")
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise UsageError(f"--config: {exc}") from None
    evaluators = list(config.evaluators)
    if not evaluators:
        raise UsageError(f"--config: {path} has no evaluators: section")
    if args.evaluator:
        known = {e.name for e in evaluators}
        for name in args.evaluator:
            if name not in known:
                raise UsageError(
                    f"--evaluator: no evaluator {name!r} in {path} (known: "
                    f"{', '.join(sorted(known))})"
                )
        evaluators = [e for e in evaluators if e.name in set(args.evaluator)]
    if args.since and args.until and args.since >= args.until:
        raise UsageError("--since: must be before --until")
    prepare_store(settings)
    outcome = asyncio.run(_run(settings, path, evaluators, args.since, args.until))
    if args.json:
        print(json.dumps(outcome, indent=2))
    else:
        for name, tally in outcome["evaluators"].items():
            print(
                f"{name} ({tally['version']}): {tally['evaluated']} evaluated, "
                f"{tally['failed']} failed, {tally['errors']} errors, "
                f"{tally['already']} already done, {tally['pending']} left pending, "
                f"{tally['tokens']} judge tokens"
            )
    if outcome["stopped"]:
        print(f"llmscope evaluate: {outcome['stopped']}", file=sys.stderr)
    return 0


async def _run(
    settings: Any,
    path: Path,
    evaluators: list[Evaluator],
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    from llmscope.collector.gateway.evaluators import LLMJudge
    from llmscope.collector.gateway.service import Gateway
    from llmscope.collector.ingest import Recorder, RecordWriter
    from llmscope.collector.masking import sessionmaker_for
    from llmscope.db import make_engine
    from llmscope.evaluate.evaluations.runner import Judging, evaluate_range

    engine = make_engine(settings.database_url)
    factory = sessionmaker_for(engine, settings)
    recorder: Recorder | None = None
    gateway: Gateway | None = None
    try:
        if any(isinstance(e, LLMJudge) for e in evaluators):
            recorder = Recorder(factory, spool_dir=settings.data_dir / "spool")
            recorder.start()
            gateway = Gateway(path, RecordWriter.from_settings(settings, recorder))
            await gateway.start()
        judging = Judging(
            factory,
            gateway,
            concurrency=settings.eval_concurrency,
            max_tokens_per_day=settings.eval_max_tokens_per_day,
            lease=timedelta(seconds=settings.eval_claim_lease_s),
        )
        result = await evaluate_range(judging, evaluators, since=since, until=until)
    finally:
        if gateway is not None:
            await gateway.stop()
        if recorder is not None:
            recorder.stop()  # the judge's internal call records reach the store
        engine.dispose()
    return {
        "evaluators": {
            e.name: {"version": e.version, "type": e.type, **result.tally(e.name).as_dict()}
            for e in evaluators
        },
        "stopped": result.stopped,
        "unreachable": result.unreachable,
    }
