"""``llmscope embed [--follow] [--since T] [--until T] [--database-url URL]``: fill the cache.

Embeds the texts of stored records that the embedding cache lacks for the configured model
and backend (``incremental.embed_new_records``), so a later ``llmscope analyze`` only clusters.
Default range: the records a default run analyses (the last 8 days). ``--follow`` then keeps
embedding records as the collector receives them, every ``--interval`` seconds, until stopped.
One line per pass on stderr; never a prompt's text. ``--ray ADDRESS`` embeds once on a Ray
cluster instead (``ray_embed.py``); connecting comes first, so a bad address changes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from llmscope.cli import UsageError, add_database_url, prepare_store, settings_from
from llmscope.config import Settings

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
    embed.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="embed with Ray Data on the cluster at HOST:PORT, auto (the one `ray start` runs "
        "here), or local[:N] (a throwaway local instance with N CPUs); needs llmscope[ray]",
    )
    embed.add_argument(
        "--ray-actors",
        type=_positive_int,
        metavar="N",
        help="with --ray: encoder actors (default: one per GPU, else one per CPU of the cluster)",
    )
    embed.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="with --ray: texts per actor call (default 256)",
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


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0: {text!r}")
    return int(text)


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
    if args.ray is not None:
        return _embed_on_ray(args, settings, since, until)
    if args.ray_actors or args.batch_size:
        raise UsageError("--ray-actors and --batch-size apply to --ray only")
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


def _embed_on_ray(
    args: argparse.Namespace, settings: Settings, since: datetime | None, until: datetime | None
) -> int:
    """One pass on the Ray cluster; the store is opened only once the cluster has answered."""
    if args.follow:
        raise UsageError("--ray embeds once: run it from a schedule; --follow embeds locally")
    from llmscope.analysis import ray_embed
    from llmscope.analysis.encoders import encoder_for
    from llmscope.db import make_engine, make_sessionmaker

    encoder = encoder_for(settings)
    try:
        ray_embed.check_encoder(encoder)
        ray_embed.connect(args.ray)
    except ray_embed.RaySetupError as exc:
        raise UsageError(str(exc)) from exc
    engine = None
    try:
        prepare_store(settings)
        engine = make_engine(settings.database_url)
        with make_sessionmaker(engine)() as session:
            started = time.perf_counter()
            done = ray_embed.embed_with_ray(
                session,
                settings,
                encoder,
                since=since or datetime.now(UTC) - DEFAULT_SPAN,
                until=until,
                actors=args.ray_actors,
                batch_size=args.batch_size or ray_embed.DEFAULT_BATCH_SIZE,
                progress=sys.stderr.isatty(),
            )
        print(
            f"embed: {done.records} records, {done.embedded} texts embedded "
            f"({encoder.key}) on Ray in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
    finally:
        if engine is not None:
            engine.dispose()
        ray_embed.disconnect()
    return 0
