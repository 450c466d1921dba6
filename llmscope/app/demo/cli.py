"""``llmscope demo``: the newcomer's one command, from an empty store to the dashboard.

It starts the collector with the demo gateway (offline provider), replays two weeks of a
fictional support assistant's traffic through it, runs the analysis with windows that fit the
replay, says in words what it found, and serves the dashboard until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from llmscope.cli import CommandError, UsageError, port_number, prepare_store, settings_from
from llmscope.config import Settings

if TYPE_CHECKING:
    from llmscope.app.demo.plan import Timeline
    from llmscope.report import RunReport

DEFAULT_RECORDS = 3000
DEFAULT_SEED = 7
MIN_RECORDS = 200  # fewer, and the planted events are too small to tell from chance
FULL_STORY_RECORDS = 1200  # from here on, all three planted events are found


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser(
        "demo", help="replay two weeks of offline demo traffic, analyse it, open the dashboard"
    )
    demo.add_argument(
        "--records",
        type=int,
        default=DEFAULT_RECORDS,
        help=f"calls to replay (default {DEFAULT_RECORDS}, at least {MIN_RECORDS})",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"the traffic plan's random seed (default {DEFAULT_SEED}); same seed, same story",
    )
    demo.add_argument(
        "--now",
        type=_instant,
        metavar="TIME",
        help="when the replayed fortnight ends, ISO 8601 (default: now); pins the whole story",
    )
    demo.add_argument(
        "--no-dashboard", action="store_true", help="stop after the analysis; serve nothing"
    )
    demo.add_argument(
        "--port", type=port_number, default=8050, help="dashboard port (default 8050)"
    )
    demo.add_argument(
        "--collector-port", type=port_number, help="collector port (default: a free loopback port)"
    )
    demo.add_argument(
        "--database-url",
        metavar="URL",
        help="an EMPTY store to fill (default: a fresh SQLite file, <data dir>/demo/demo.db)",
    )
    demo.set_defaults(handler=demo_command)


def _instant(text: str) -> datetime:
    from llmscope.analysis.windows import parse_moment

    try:
        return parse_moment(text, "--now")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Progress:
    """Prints ``what: n/total`` at every tenth, so a log stays short and a terminal stays live."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = time.monotonic()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = done * 10 // max(1, total)
        if tenth > self.shown:
            self.shown = tenth
            elapsed = time.monotonic() - self.started
            _say(f"  {self.what}: {done}/{total} ({done * 100 // max(1, total)}%, {elapsed:.0f} s)")


def _check_args(args: argparse.Namespace) -> None:
    if args.records < MIN_RECORDS:
        raise UsageError(f"--records: at least {MIN_RECORDS} (got {args.records})")
    for name in ("port", "collector_port"):
        value = getattr(args, name)
        if value is not None and not 0 < value <= 65535:
            raise UsageError(f"--{name.replace('_', '-')}: {value} is not a port number")


def _demo_settings(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The store to fill and the demo's working directory (gateway YAML, logs, spool)."""
    if args.database_url:
        settings = settings_from(args)
        workdir = settings.data_dir / "demo"
        return settings, workdir
    base = Settings()
    workdir = base.data_dir / "demo"
    store = workdir / "demo.db"
    # The demo's own store is rebuilt every time, so a second run shows the same story.
    for path in (store, store.with_name("demo.db-wal"), store.with_name("demo.db-shm")):
        path.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    args.database_url = f"sqlite:///{store}"
    return settings_from(args), workdir


def _record_count(database_url: str) -> int:
    from llmscope.db import make_engine
    from llmscope.db.models import Record

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Record)) or 0)
    finally:
        engine.dispose()


def _wait_for_records(database_url: str, expected: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (count := _record_count(database_url)) < expected:
        if time.monotonic() > deadline:
            raise CommandError(f"only {count} of {expected} replayed calls reached the store")
        time.sleep(0.2)


def demo_command(args: argparse.Namespace) -> int:
    from llmscope.app.demo.plan import ENDPOINTS, make_plan, timeline_ending
    from llmscope.app.demo.replay import replay, start_collector

    _check_args(args)
    # `kill` stops the demo as Ctrl-C does, so the collector child is always stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    explicit_store = bool(args.database_url)
    settings, workdir = _demo_settings(args)
    prepare_store(settings)
    if explicit_store and (held := _record_count(settings.database_url)):
        raise UsageError(
            f"--database-url: the store already holds {held} records; the demo needs an empty "
            "one (leave --database-url out for a fresh demo store)"
        )
    if args.records < FULL_STORY_RECORDS:
        _say(
            f"note: with fewer than {FULL_STORY_RECORDS} calls the planted thumbs-down may be too "
            "thin to reach significance"
        )
    started = time.monotonic()
    timeline = timeline_ending(args.now or datetime.now(UTC))
    calls = make_plan(args.records, timeline, seed=args.seed)
    models = ", ".join(f"{name} ({model}, ~{ms} ms)" for name, (model, ms) in ENDPOINTS.items())
    _say("llmscope demo: Larkspur Home's support assistant, two weeks of traffic, offline.")
    _say(
        "  Every answer comes from llmscope's OFFLINE provider (canned support answers chosen "
        "by topic); no real LLM is called and nothing leaves this machine."
    )
    _say(f"  store: {make_url(settings.database_url)!r}")
    _say(f"  endpoints: {models}")

    try:
        collector = start_collector(settings.database_url, workdir, port=args.collector_port)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    try:
        _say(f"  collector and gateway: {collector.url} (log: {collector.log_path})")
        _say(
            f"Replaying {len(calls)} calls from {timeline.start:%Y-%m-%d} to "
            f"{timeline.end:%Y-%m-%d %H:%M} UTC with the openai client, with users' thumbs up/down"
        )
        replay(collector.url, calls, progress=_Progress("replayed"))
        _wait_for_records(settings.database_url, len(calls))
        rated = sum(c.feedback is not None for c in calls)
        _say(f"  {len(calls)} calls recorded, {rated} rated ({time.monotonic() - started:.0f} s)")
        report = _analyse(settings, timeline, args.port)
        first = _tell(settings, report)
        _say(f"Demo ready in {time.monotonic() - started:.0f} s.")
        if not args.no_dashboard:
            _serve_dashboard(settings, args.port, report.run_id, first, collector.url)
    finally:
        collector.stop()
    return 0


def _analysis_settings(settings: Settings, port: int) -> Settings:
    """The settings the demo's analysis runs with: nothing leaves the machine."""
    return settings.model_copy(
        update={
            # Demo alerts are stored and shown, never sent to the user's real webhooks.
            "alert_webhook_url": None,
            "alert_slack_webhook_url": None,
            "summary_llm_url": None,  # extractive summaries: there is no LLM to ask
            "dashboard_url": f"http://127.0.0.1:{port}",
        }
    )


def _analyse(settings: Settings, timeline: Timeline, port: int) -> RunReport:
    from llmscope.analysis.job import run_analysis
    from llmscope.analysis.windows import Window

    baseline = Window(timeline.start, timeline.current_start)
    current = Window(timeline.current_start, timeline.end)
    _say(
        f"Analysing: baseline {baseline.start:%b %d}-{baseline.end:%b %d}, current (the last "
        f"three days) {current.start:%b %d}-{current.end:%b %d}: embedding, clustering, drift "
        "and thumbs-down tests"
    )
    began = time.monotonic()
    # Alerts are logged at WARNING; the story below says the same in words.
    logging.getLogger("llmscope.analysis").setLevel(logging.ERROR)
    report = run_analysis(_analysis_settings(settings, port), baseline, current, progress=True)
    _say(
        f"  run {report.run_id}: {len(report.clusters)} clusters, "
        f"{len(report.findings)} findings, "
        f"{len(report.alerts)} alerts ({time.monotonic() - began:.0f} s)"
    )
    return report


def _tell(settings: Settings, report: RunReport) -> int | None:
    """Print what the run found; returns the cluster to look at first."""
    from llmscope.app.demo.story import tell
    from llmscope.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        story = tell(engine, report, hotspot_fdr=settings.hotspot_fdr)
    finally:
        engine.dispose()
    _say()
    _say("What the analysis found:")
    for line in story.lines:
        _say(f"  {line}")
    _say(
        "  (Answers came from the offline provider; the users' thumbs and comments were "
        "scripted by the demo's traffic plan, app/demo/plan.py, to plant these events.)"
    )
    _say()
    return story.first_cluster


def _serve_dashboard(
    settings: Settings, port: int, run_id: str, first: int | None, collector_url: str
) -> None:
    from werkzeug.serving import make_server

    from llmscope.dashboard.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per page view
    # The cluster page's "Try a fix" runs experiments on the demo's own collector.
    app = create_app(settings.model_copy(update={"collector_url": collector_url}))
    try:
        server = make_server("127.0.0.1", port, app.server, threaded=True)
    except OSError:  # the port is taken (another dashboard?): any free one will do
        server = make_server("127.0.0.1", 0, app.server, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    link = f"{base}/clusters/{first}?run={run_id}" if first is not None else base
    _say(f"Dashboard: {link}")
    _say(f"  (overview: {base}/ ; collector API and gateway: {collector_url}; Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        _say("stopped")
    finally:
        server.server_close()
