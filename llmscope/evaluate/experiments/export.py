"""Datasets out of llmscope: a cluster's records or an experiment's answers, as JSONL or CSV.

Each row has the columns ``mlflow.genai.evaluate`` reads: ``inputs`` (a dict: the record's
``messages`` or ``prompt``, and its template ``variables`` when it has them), ``outputs`` (the
answer's text) and ``expectations`` (what llmscope knows about the answer: the user's newest
thumb, and the evaluators' pass/fail and scores). An experiment's export has one row per record
and side (``baseline`` or a variant), with ``record_id`` and ``variant`` beside the three. CSV
holds the same rows with the dict columns as JSON text.

``llmscope experiment export (--cluster ID [--run RUN_ID] | --experiment ID) [--format
jsonl|csv] [--output FILE]`` writes it (to standard output without ``--output``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.cli import UsageError, add_database_url, prepare_store, settings_from
from llmscope.db.models import Evaluation, Experiment, ExperimentItem, Record
from llmscope.db.queries import newest_thumbs
from llmscope.experiment_report import ExperimentReport

COLUMNS = ("inputs", "outputs", "expectations")


def load_report(session: Session, experiment_id: str) -> ExperimentReport | None:
    """A stored experiment's report (None: no such experiment, or it has not finished)."""
    row = session.get(Experiment, experiment_id)
    if row is None or row.report is None:
        return None
    return ExperimentReport.model_validate(row.report)


def _inputs(record: Record | None) -> dict[str, Any]:
    if record is None:
        return {}
    out: dict[str, Any] = {}
    if record.messages:
        out["messages"] = record.messages
    elif record.prompt is not None:
        out["prompt"] = record.prompt
    if record.template_variables:
        out["variables"] = record.template_variables
    return out


def _records(session: Session, ids: list[str]) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for start in range(0, len(ids), 500):
        for row in session.scalars(select(Record).where(Record.id.in_(ids[start : start + 500]))):
            out[row.id] = row
    return out


def _thumb(value: bool | None) -> str | None:
    return None if value is None else ("down" if value else "up")


def cluster_rows(session: Session, run: str | None, cluster_id: int) -> Iterator[dict[str, Any]]:
    """A cluster's records in the run; DatasetError when there is no such run or cluster."""
    from llmscope.evaluate.experiments.dataset import cluster_records, resolve_run

    run_id = resolve_run(session, run)
    ids = cluster_records(session, run_id, cluster_id)
    records = _records(session, ids)
    thumbs = newest_thumbs(session, ids)
    verdicts: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        for ev in session.scalars(
            select(Evaluation)
            .where(Evaluation.record_id.in_(ids[start : start + 500]), Evaluation.status == "done")
            .order_by(Evaluation.created_at)
        ):
            verdicts.setdefault(ev.record_id, {})[ev.evaluator] = {
                "passed": ev.passed,
                "score": ev.score,
            }
    for rid in ids:
        record = records[rid]
        yield {
            "inputs": _inputs(record),
            "outputs": record.response,
            "expectations": {
                "thumb": _thumb(thumbs.get(rid)),
                "evaluations": verdicts.get(rid, {}),
            },
            "record_id": rid,
        }


def experiment_rows(session: Session, experiment_id: str) -> Iterator[dict[str, Any]]:
    """An experiment's answers, baseline first, in dataset order."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise UsageError(f"--experiment: no experiment {experiment_id!r}")
    ids = list(experiment.record_ids or [])
    order = {rid: i for i, rid in enumerate(ids)}
    records = _records(session, ids)
    thumbs = newest_thumbs(session, ids)
    items = session.scalars(
        select(ExperimentItem).where(ExperimentItem.experiment_id == experiment_id)
    ).all()
    calls = _records(
        session, [i.call_record_id for i in items if i.variant != "baseline" and i.call_record_id]
    )
    ranked = sorted(
        items, key=lambda i: (i.variant != "baseline", i.variant, order.get(i.record_id, 0))
    )
    for item in ranked:
        source = (
            records.get(item.record_id)
            if item.variant == "baseline"
            else calls.get(item.call_record_id or "")
        )
        inputs = _inputs(source or records.get(item.record_id))
        yield {
            "inputs": inputs,
            "outputs": item.answer,
            "expectations": {
                "thumb": _thumb(thumbs.get(item.record_id)) if item.variant == "baseline" else None,
                "evaluations": {
                    name: {"passed": v.get("passed"), "score": v.get("score")}
                    for name, v in (item.verdicts or {}).items()
                },
            },
            "record_id": item.record_id,
            "variant": item.variant,
        }


def write(rows: Iterator[dict[str, Any]], fmt: str, out: io.TextIOBase | Any) -> int:
    """Write ``rows`` as JSONL or CSV; the number written."""
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
        return count
    writer: Any = None
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(
            {
                k: v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False)
                for k, v in row.items()
            }
        )
        count += 1
    return count


def register_export(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = sub.add_parser("export", help="write a cluster or an experiment as a dataset")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", metavar="ID", type=int, help="a cluster's records")
    which.add_argument("--experiment", metavar="ID", help="an experiment's answers")
    export.add_argument("--run", metavar="RUN_ID", default="latest", help="analysis run (latest)")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", metavar="FILE", help="write here (default: stdout)")
    add_database_url(export)
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    from llmscope.collector.masking import sessionmaker_for
    from llmscope.db import make_engine
    from llmscope.evaluate.experiments.dataset import DatasetError

    settings = settings_from(args)
    prepare_store(settings)
    engine = make_engine(settings.database_url)
    try:
        with sessionmaker_for(engine, settings)() as session:
            try:
                if args.experiment is not None:
                    rows = list(experiment_rows(session, args.experiment))
                else:
                    rows = list(cluster_rows(session, args.run, args.cluster))
            except DatasetError as exc:
                raise UsageError(str(exc)) from None
    finally:
        engine.dispose()
    if args.output:
        with Path(args.output).open("w", encoding="utf-8", newline="") as handle:
            count = write(iter(rows), args.format, handle)
        print(f"wrote {count} rows to {args.output}", file=sys.stderr)
    else:
        write(iter(rows), args.format, sys.stdout)
    return 0
