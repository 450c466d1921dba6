"""``llmscope embed [--follow] [--since T] [--until T] [--database-url URL]``: fill the cache.

Embeds the texts of stored records that the embedding cache lacks for the configured model
and backend (``incremental.embed_new_records``), so a later ``llmscope analyze`` only clusters.
Default range: the records a default run analyses (the last 8 days). ``--follow`` then keeps
embedding records as the collector receives them, every ``--interval`` seconds, until stopped.
One line per pass on stderr; never a prompt's text.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from llmscope.cli import UsageError, add_database_url, prepare_store, settings_from

# The span of a default analysis run: current (24 h) + baseline (7 days).
DEFAULT_SPAN = timedelta(days=8)
# A record received up to this long before the watermark is looked at again: the collector
# commits its writes in batches, so received_at is not committed in order.
FOLLOW_OVERLAP = timedelta(seconds=60)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    embed = subparsers.add_parser(
        "embed", help="fill the embedding cache with the texts of stored records"
    )
    embed.add_argument(
        "--since", metavar="T", help="records from this ISO 8601 time (default: 8 days ago)"
    )
    embed.add_argument("--until", metavar="T", help="records before this ISO 8601 time")
    embed.add_argument(
        "--follow", action="store_true", help="keep embedding new records until stopped"
    )
    embed.add_argument(
        "--interval",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="with --follow: seconds between passes (default 5)",
    )
    add_database_url(embed)
    embed.set_defaults(handler=embed_command)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def embed_command(args: argparse.Namespace) -> int:
    from llmscope.analysis.windows import parse_moment

    try:
        since = parse_moment(args.since, "--since") if args.since else None
        until = parse_moment(args.until, "--until") if args.until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if since and until and since >= until:
        raise UsageError(f"--since {args.since} must be before --until {args.until}")
    settings = settings_from(args)
    prepare_store(settings)

    from llmscope.analysis.encoders import encoder_for
    from llmscope.analysis.incremental import embed_new_records, newest_received
    from llmscope.db import make_engine, make_sessionmaker

    encoder = encoder_for(settings)
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            watermark = newest_received(session)
            started = time.perf_counter()
            done = embed_new_records(
                session,
                settings,
                since=since or datetime.now(UTC) - DEFAULT_SPAN,
                until=until,
                encoder=encoder,
                progress=sys.stderr.isatty(),
            )
            print(
                f"embed: {done.records} records, {done.embedded} texts embedded "
                f"({encoder.key}) in {time.perf_counter() - started:.1f}s",
                file=sys.stderr,
            )
            while args.follow:
                time.sleep(args.interval)
                after = watermark - FOLLOW_OVERLAP if watermark else None
                done = embed_new_records(
                    session,
                    settings,
                    since=since or datetime.now(UTC) - DEFAULT_SPAN,
                    until=until,
                    received_after=after,
                    encoder=encoder,
                )
                if done.newest_received and (not watermark or done.newest_received > watermark):
                    watermark = done.newest_received
                if done.embedded:
                    print(
                        f"embed: {done.records} new records, {done.embedded} texts embedded",
                        file=sys.stderr,
                        flush=True,
                    )
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
    return 0
