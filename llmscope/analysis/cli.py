"""``llmscope analyze`` (one analysis run) and ``llmscope export clusters`` (its assignments)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmscope.cli import (
    CommandError,
    UsageError,
    add_database_url,
    announce_store,
    prepare_store,
    settings_from,
)
from llmscope.report import deepest_subcluster, stored_members, utc_iso

if TYPE_CHECKING:
    from llmscope.report import RunReport

EXPORT_FORMATS = ("csv", "jsonl", "parquet")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    analyze = subparsers.add_parser("analyze", help="run one analysis over the stored records")
    analyze.add_argument(
        "--baseline", metavar="START/END", help="ISO 8601 interval (default: the 7 days before)"
    )
    analyze.add_argument(
        "--current", metavar="START/END", help="ISO 8601 interval (default: the last 24 h)"
    )
    analyze.add_argument("--json", action="store_true", help="print the run report as JSON")
    add_database_url(analyze)
    analyze.set_defaults(handler=analyze_command)

    export = subparsers.add_parser("export", help="export analysis results")
    what = export.add_subparsers(dest="export_what", metavar="WHAT")
    what.required = True
    clusters = what.add_parser("clusters", help="one row per analysed record of a run")
    clusters.add_argument("--run", default="latest", help="latest (default) or a run id")
    clusters.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    clusters.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    add_database_url(clusters)
    clusters.set_defaults(handler=export_clusters_command)

    from llmscope.analysis import embed_cli

    embed_cli.register(subparsers)


def analyze_command(args: argparse.Namespace) -> int:
    from llmscope.analysis.windows import default_windows, parse_interval

    try:
        baseline = parse_interval(args.baseline) if args.baseline else None
        current = parse_interval(args.current) if args.current else None
        baseline, current = default_windows(None, baseline, current)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    settings = settings_from(args)
    announce_store(settings, "analyze", reader=True)
    prepare_store(settings)

    from llmscope.analysis.small_data import EmptyWindows, window_records
    from llmscope.db import make_engine, make_sessionmaker

    # Empty windows answer at once: the pipeline, the model and their imports are not loaded.
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            empty = window_records(session, baseline, current) == 0
    finally:
        engine.dispose()
    if empty:
        raise CommandError(str(EmptyWindows(baseline, current)))

    from llmscope.analysis.job import run_analysis

    try:
        report = run_analysis(settings, baseline, current, progress=sys.stderr.isatty())
    except EmptyWindows as exc:  # records, but none with text to analyse
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report_summary(report))
    return 0


def report_summary(report: RunReport) -> str:
    """What ``llmscope analyze`` prints without ``--json``: the windows, then the run's
    findings in the report's order, most severe first."""
    b, c, g = report.baseline, report.current, report.global_drift
    lines = [
        f"run {report.run_id}: {len(report.clusters)} clusters, {len(report.findings)} findings",
        f"  baseline {utc_iso(b.start)}/{utc_iso(b.end)}: {b.records} records",
        f"  current  {utc_iso(c.start)}/{utc_iso(c.end)}: {c.records} records",
        f"  global drift: p={g.p_value:.3g} {'FLAGGED' if g.flagged else 'not flagged'}"
        if g.p_value is not None
        else "  global drift: not tested",
    ]
    lines += [f"  warning: {w}" for w in report.warnings]
    for rank, finding in enumerate(report.findings, start=1):
        lines.append(f"  {rank}. [{finding.kind}] {finding.message}")
    return "\n".join(lines)


def export_clusters_command(args: argparse.Namespace) -> int:
    if args.format == "parquet" and not args.output and sys.stdout.isatty():
        raise UsageError("--format parquet is binary: give -o FILE or redirect stdout")
    settings = settings_from(args)
    announce_store(settings, "export", reader=True)
    prepare_store(settings)

    from sqlalchemy import select

    from llmscope.db import make_engine, make_sessionmaker
    from llmscope.db.models import Record, RunAssignment, RunCluster
    from llmscope.db.queries import LATEST, resolve_run_id

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            run_id = resolve_run_id(session, args.run)
            if run_id is None:
                if args.run == LATEST:
                    raise CommandError("no analysis run yet: run `llmscope analyze` first")
                raise UsageError(f"--run: no analysis run {args.run!r}")
            rows = session.execute(
                select(
                    RunAssignment.record_id,
                    RunAssignment.cluster_id,
                    RunAssignment.window,
                    Record.session_id,
                )
                .outerjoin(Record, Record.id == RunAssignment.record_id)
                .where(RunAssignment.run_id == run_id)
                .order_by(RunAssignment.record_id)
            ).all()
            clusters = session.execute(
                select(RunCluster.cluster_id, RunCluster.stats).where(RunCluster.run_id == run_id)
            ).all()
    finally:
        engine.dispose()
    subclusters = _subcluster_of(clusters)
    rephrased, regenerated = _turn_flags(clusters)
    data = _encode(
        [
            (
                r[0],
                int(r[1]),
                r[2],
                subclusters.get(r[0]),
                r[3],
                r[0] in rephrased,
                r[0] in regenerated,
            )
            for r in rows
        ],
        args.format,
    )
    if args.output:
        with open(args.output, "wb") as out:
            out.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _subcluster_of(clusters: Sequence[Any]) -> dict[str, int]:
    """Record id -> the most specific flagged sub-cluster holding it (the deepest one)."""
    stats = {int(c): s or {} for c, s in clusters}
    members = {c: stored_members(s) for c, s in stats.items()}
    return deepest_subcluster(
        {c: s.get("parent") for c, s in stats.items()},
        {c: m for c, m in members.items() if m is not None},
    )


def _turn_flags(clusters: Sequence[Any]) -> tuple[set[str], set[str]]:
    """The run's rephrased and regenerated record ids (runs before them: none)."""
    rephrased: set[str] = set()
    regenerated: set[str] = set()
    for _, stats in clusters:
        implicit = (stats or {}).get("implicit") or {}
        rephrased.update(implicit.get("rephrased", {}))
        regenerated.update(implicit.get("regenerated", {}))
    return rephrased, regenerated


Row = tuple[str, int, str, int | None, str | None, bool, bool]
COLUMNS = (
    "record_id",
    "cluster_id",
    "window",
    "subcluster_id",
    "session_id",
    "rephrased",
    "regenerated",
)


def _encode(rows: list[Row], fmt: str) -> bytes:
    columns = COLUMNS
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(
            ["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row]
            for row in rows
        )
        return text.getvalue().encode()
    if fmt == "jsonl":
        lines = (json.dumps(dict(zip(columns, row, strict=True))) for row in rows)
        return "".join(f"{line}\n" for line in lines).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "record_id": pa.array([r[0] for r in rows], pa.string()),
            "cluster_id": pa.array([r[1] for r in rows], pa.int64()),
            "window": pa.array([r[2] for r in rows], pa.string()),
            "subcluster_id": pa.array([r[3] for r in rows], pa.int64()),
            "session_id": pa.array([r[4] for r in rows], pa.string()),
            "rephrased": pa.array([r[5] for r in rows], pa.bool_()),
            "regenerated": pa.array([r[6] for r in rows], pa.bool_()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
