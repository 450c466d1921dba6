"""Retention: ``llmscope prune`` and the worker's hourly pass delete the records older than the
cutoff with everything hanging off them, touch nothing newer, and a dry run changes nothing;
on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from llmscope.app.cli import main
from llmscope.app.worker import Worker
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import (
    AnalysisRun,
    Base,
    Evaluation,
    Experiment,
    Feedback,
    PendingEvaluation,
    Record,
    RunAssignment,
    RunCluster,
    StoredSpan,
    TraceSpan,
)
from llmscope.db.prune import TABLES, cutoff_before, prune

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
OLD = NOW - timedelta(days=40)
NEW = NOW - timedelta(days=1)

# What a prune at CUTOFF deletes from the store _seed builds (worked out by hand there).
EXPECTED = {
    "records": 4,  # old-1, old-merged (into old-1), orphan (merged into a gone record), old-3
    "feedback": 2,  # old-1's two events
    "evaluations": 1,  # old-1's
    "trace_spans": 2,  # old-1's and old-3's
    "run_assignments": 1,  # old-1's place in the run
    "spans": 4,  # t1's two (one after the cutoff, but t1 keeps no record), t3's old one, t4's
    "pending_evaluations": 1,  # the one received before the cutoff
}
KEPT_RECORDS = {"new-1", "old-into-new", "new-3"}
KEPT_SPANS = {("t3", "s3-new"), ("t5", "s5")}


def _span(trace: str, span: str, start: datetime) -> StoredSpan:
    return StoredSpan(
        trace_id=trace, span_id=span, name="search", kind="tool", start=start, status="ok"
    )


def _seed(engine: Engine) -> None:
    """Old and new calls with their feedback, evaluations, trace rows and spans; a run; an
    experiment. Comments say what a prune at CUTOFF must do with each."""
    records = [
        Record(id="old-1", timestamp=OLD, prompt="a", trace_id="t1", span_id="a1"),  # goes
        # merged into old-1: goes with it (its own time would keep it)
        Record(id="old-merged", timestamp=NEW, prompt="a", merged_into="old-1"),
        # old, merged into a record that stays: stays with it
        Record(id="old-into-new", timestamp=OLD, prompt="b", merged_into="new-1"),
        Record(id="orphan", timestamp=OLD, prompt="c", merged_into="gone"),  # goes
        Record(id="new-1", timestamp=NEW, prompt="b", trace_id="t2", span_id="b1"),  # stays
        Record(id="old-3", timestamp=OLD, prompt="d", trace_id="t3", span_id="d1"),  # goes
        Record(id="new-3", timestamp=NEW, prompt="e", trace_id="t3", span_id="e1"),  # stays
    ]
    with Session(engine) as session:
        session.add_all(records)
        session.flush()
        session.add_all(
            [
                Feedback(record_id="old-1", thumb="up", created_at=OLD),
                Feedback(record_id="old-1", thumb="down", created_at=NEW),
                Feedback(record_id="new-1", thumb="down", created_at=NEW),
                Evaluation(record_id="old-1", evaluator="judge", version="1", status="done"),
                Evaluation(record_id="new-1", evaluator="judge", version="1", status="done"),
                TraceSpan(trace_id="t1", span_id="a1", record_id="old-1"),
                TraceSpan(trace_id="t2", span_id="b1", record_id="new-1"),
                TraceSpan(trace_id="t3", span_id="d1", record_id="old-3"),
                TraceSpan(trace_id="t3", span_id="e1", record_id="new-3"),
                _span("t1", "s1-old", OLD),
                _span("t1", "s1-later", NOW - timedelta(days=10)),
                _span("t3", "s3-old", OLD),
                _span("t3", "s3-new", NEW),
                _span("t4", "s4", OLD),  # a trace without any record
                _span("t5", "s5", NEW),
                PendingEvaluation(record_ref="x", evaluator="judge", received_at=OLD),
                PendingEvaluation(record_ref="y", evaluator="judge", received_at=NEW),
                AnalysisRun(
                    id="run-1",
                    created_at=OLD,
                    baseline_start=OLD,
                    baseline_end=OLD,
                    current_start=OLD,
                    current_end=NEW,
                    report={"run_id": "run-1"},
                ),
                Experiment(id="exp-1", run_id="run-1", cluster_id=0, record_ids=["old-1"]),
            ]
        )
        session.flush()
        session.add_all(
            [
                RunCluster(run_id="run-1", cluster_id=0, size=2, stats={}),
                RunAssignment(
                    run_id="run-1", record_id="old-1", cluster_id=0, window="current", x=0, y=0
                ),
                RunAssignment(
                    run_id="run-1", record_id="new-1", cluster_id=0, window="current", x=0, y=0
                ),
            ]
        )
        session.commit()


def _everything(engine: Engine) -> dict[str, list[Any]]:
    """Every row of every table, as tuples, sorted: the store's whole state."""
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted((tuple(map(repr, r)) for r in rows), key=str)
    return out


def test_every_table_naming_a_record_is_pruned() -> None:
    # A table added later with a foreign key to records must be added to the prune too.
    for table in Base.metadata.sorted_tables:
        if any(fk.column.table.name == "records" for fk in table.foreign_keys):
            assert table.name in TABLES, table.name


def test_a_dry_run_counts_and_changes_nothing(engine: Engine) -> None:
    _seed(engine)
    before = _everything(engine)
    done = prune(engine, CUTOFF, dry_run=True)
    assert done.rows == EXPECTED and done.dry_run
    assert _everything(engine) == before


@pytest.mark.parametrize("batch", [1, 1000])
def test_old_calls_go_with_what_hangs_off_them_and_nothing_newer(
    engine: Engine, batch: int
) -> None:
    _seed(engine)
    before = _everything(engine)
    done = prune(engine, CUTOFF, batch=batch)
    assert done.rows == EXPECTED and not done.dry_run
    after = _everything(engine)
    with Session(engine) as session:
        assert set(session.scalars(select(Record.id))) == KEPT_RECORDS
        assert {(s.trace_id, s.span_id) for s in session.scalars(select(StoredSpan))} == KEPT_SPANS
        assert [f.record_id for f in session.scalars(select(Feedback))] == ["new-1"]
        assert [e.record_id for e in session.scalars(select(Evaluation))] == ["new-1"]
        assert {t.record_id for t in session.scalars(select(TraceSpan))} == {"new-1", "new-3"}
        assert [a.record_id for a in session.scalars(select(RunAssignment))] == ["new-1"]
        assert [p.record_ref for p in session.scalars(select(PendingEvaluation))] == ["y"]
    # runs, their reports and clusters, and experiments are kept as they were
    for table in ("analysis_runs", "run_clusters", "experiments"):
        assert after[table] == before[table]
    # every row left was there before, unchanged
    for table, rows in after.items():
        assert set(rows) <= set(before[table]), table
    assert prune(engine, CUTOFF).total == 0  # nothing left to do


def test_the_worker_prunes_with_the_retention_setting(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, retention_days=30)
    worker = Worker(settings, analyze_every=3600, embed_every=60)
    try:
        _seed(worker.engine)
        assert worker.prune_turn(now=NOW) == EXPECTED
        keep = Worker(
            Settings(database_url=database_url, data_dir=tmp_path),
            analyze_every=3600,
            embed_every=60,
        )
        try:
            assert keep.prune_turn(now=NOW) is None  # no retention: nothing is pruned
        finally:
            keep.engine.dispose()
    finally:
        worker.engine.dispose()


def test_cutoff_before_counts_days_back() -> None:
    assert cutoff_before(30, NOW) == CUTOFF
    assert cutoff_before(0.5, NOW) == NOW - timedelta(hours=12)


# --- the command ------------------------------------------------------------------------------


def _relative_store(engine: Engine) -> None:
    """One record a year old and one an hour old, relative to the clock the command reads (the
    margins are so wide that the day the test runs never matters)."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add_all(
            [
                Record(id="year-old", timestamp=now - timedelta(days=365), prompt="a"),
                Record(id="hour-old", timestamp=now - timedelta(hours=1), prompt="b"),
            ]
        )
        session.flush()
        session.add(Feedback(record_id="year-old", thumb="down"))
        session.commit()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Record)) or 0)


def test_the_command_prints_per_table_and_honours_dry_run(
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _relative_store(engine)
    monkeypatch.setenv("LLMSCOPE_DATABASE_URL", database_url)  # restored after (main sets it)
    assert main(["prune", "--older-than", "30", "--dry-run", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would delete (dry run, nothing changed), records older than 30 days")
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert list(lines) == list(TABLES)
    assert lines["records"] == "1" and lines["feedback"] == "1" and lines["spans"] == "0"
    assert _count(engine) == 2
    assert main(["prune", "--older-than", "30", "--database-url", database_url]) == 0
    assert capsys.readouterr().out.startswith("deleted, records older than 30 days")
    with engine.connect() as conn:
        assert list(conn.scalars(select(Record.id))) == ["hour-old"]


def test_the_command_reads_the_retention_setting(
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _relative_store(engine)
    monkeypatch.setenv("LLMSCOPE_DATABASE_URL", database_url)
    monkeypatch.setenv("LLMSCOPE_RETENTION_DAYS", "7")
    assert main(["prune", "--database-url", database_url]) == 0
    assert "older than 7 days" in capsys.readouterr().out
    assert _count(engine) == 1


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        ([], None, "--older-than DAYS is required"),
        (["--older-than", "abc"], None, "not a number of days"),
        (["--older-than", "0"], None, "not a positive number of days"),
        (["--older-than", "-3"], None, "not a positive number of days"),
        (["--older-than", "nan"], None, "not a positive number of days"),
        ([], "soon", "retention_days"),
        ([], "-1", "retention_days"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: str | None,
    needle: str,
) -> None:
    _relative_store(engine)
    monkeypatch.setenv("LLMSCOPE_DATABASE_URL", database_url)
    monkeypatch.delenv("LLMSCOPE_RETENTION_DAYS", raising=False)
    if env is not None:
        monkeypatch.setenv("LLMSCOPE_RETENTION_DAYS", env)
    try:
        code = main(["prune", *args, "--database-url", database_url])
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert _count(engine) == 2


def test_a_running_worker_prunes_at_start(database_url: str, tmp_path: Path) -> None:
    # Relative to the clock the worker reads, with wide margins: a call a year old goes, one 20
    # days old stays (and lies outside the analysis windows, so the first run is skipped fast).
    now = datetime.now(UTC)
    settings = Settings(database_url=database_url, data_dir=tmp_path, retention_days=30)
    worker = Worker(settings, analyze_every=3600, embed_every=3600)
    with Session(worker.engine) as session:
        session.add_all(
            [
                Record(id="year-old", timestamp=now - timedelta(days=365), prompt="a"),
                Record(id="kept", timestamp=now - timedelta(days=20), prompt="b"),
            ]
        )
        session.commit()
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while _count(worker.engine) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
        worker.engine.dispose()
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert list(conn.scalars(select(Record.id))) == ["kept"]
    finally:
        engine.dispose()


def _random_store(engine: Engine, seed: int) -> None:
    """200 calls around the cutoff on a few shared traces, some merged into others (or into a
    record never stored; one level deep, as the collector's nesting makes them), with feedback,
    and spans on those traces and on traces of their own."""
    rng = random.Random(seed)
    ids = [f"r{i}" for i in range(200)]
    survivors: list[str] = []
    with Session(engine) as session:
        for rid in ids:
            merged = None
            if survivors and rng.random() < 0.2:
                merged = rng.choice([*survivors, "never-stored"])
            else:
                survivors.append(rid)
            session.add(
                Record(
                    id=rid,
                    timestamp=CUTOFF + timedelta(days=rng.uniform(-20, 20)),
                    prompt="x",
                    trace_id=f"t{rng.randrange(40)}" if rng.random() < 0.7 else None,
                    merged_into=merged,
                )
            )
        session.flush()
        for rid in rng.sample(ids, 80):
            session.add(Feedback(record_id=rid, thumb="down"))
        for k in range(120):
            start = CUTOFF + timedelta(days=rng.uniform(-20, 20))
            session.add(_span(f"t{rng.randrange(60)}", f"s{k}", start))
        session.commit()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dry_run_counts_what_the_prune_then_deletes(engine: Engine, seed: int) -> None:
    _random_store(engine, seed)
    with Session(engine) as session:
        before = {r.id: r for r in session.scalars(select(Record))}
    counted = prune(engine, CUTOFF, dry_run=True).rows
    assert prune(engine, CUTOFF, batch=7).rows == counted
    assert counted["records"] > 0 and counted["spans"] > 0
    with Session(engine) as session:
        kept = {r.id: r for r in session.scalars(select(Record))}
        spans = list(session.scalars(select(StoredSpan)))
    gone = set(before) - set(kept)
    for rid, r in kept.items():  # an old record stays only inside a call that stays
        if r.timestamp < CUTOFF:
            assert r.merged_into in kept, rid
    for rid in gone:  # a new record goes only with the old call it was merged into
        r = before[rid]
        if r.timestamp >= CUTOFF:
            assert r.merged_into in gone and before[r.merged_into].timestamp < CUTOFF, rid
    traces_left = {r.trace_id for r in kept.values()}
    traces_gone = {before[rid].trace_id for rid in gone} - traces_left
    for s in spans:
        assert s.start >= CUTOFF and s.trace_id not in traces_gone
