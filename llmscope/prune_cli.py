"""``llmscope prune [--older-than DAYS] [--dry-run] [--database-url URL]``: retention by hand.

Deletes the records older than the cutoff with everything hanging off them
(:mod:`llmscope.db.prune` says what goes and what stays) and prints the rows per table;
``--dry-run`` prints what would go and changes nothing. ``--older-than`` defaults to
``LLMSCOPE_RETENTION_DAYS``; with neither, exit 2.
"""

from __future__ import annotations

import argparse
import math

from llmscope.cli import UsageError, add_database_url, announce_store, prepare_store, settings_from


def _days(text: str) -> float:
    """argparse type: a positive number of days (``30``, ``0.5``)."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not math.isfinite(days) or days <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of days")
    return days


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    prune = subparsers.add_parser(
        "prune", help="delete records older than the retention, with what hangs off them"
    )
    prune.add_argument(
        "--older-than",
        type=_days,
        metavar="DAYS",
        help="delete records older than this many days (default: $LLMSCOPE_RETENTION_DAYS)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; change nothing"
    )
    add_database_url(prune)
    prune.set_defaults(handler=prune_command)


def prune_command(args: argparse.Namespace) -> int:
    from llmscope.db import make_engine
    from llmscope.db.prune import cutoff_before, prune

    settings = settings_from(args)
    days = args.older_than if args.older_than is not None else settings.retention_days
    if days is None:
        raise UsageError("--older-than DAYS is required while LLMSCOPE_RETENTION_DAYS is not set")
    announce_store(settings, "prune", reader=True)
    prepare_store(settings)
    engine = make_engine(settings.database_url)
    try:
        done = prune(engine, cutoff_before(days), dry_run=args.dry_run)
    finally:
        engine.dispose()
    older = f"records older than {days:g} days (before {done.cutoff:%Y-%m-%dT%H:%M:%SZ})"
    if done.dry_run:
        print(f"would delete (dry run, nothing changed), {older}:")
    else:
        print(f"deleted, {older}:")
    for table, rows in done.rows.items():
        print(f"  {table:<20}{rows:>12,}")
    return 0
