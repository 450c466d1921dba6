"""``llmscope worker``: one analysis at a time across workers, nothing half-written, clean stops.

Real ``llmscope worker`` processes run the real analysis on a store seeded relative to the
wall clock (the worker's windows are relative to now), so nothing here depends on the date.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from llmscope.app.worker import AnalysisLock, interval
from llmscope.db import make_engine
from llmscope.db.models import AnalysisRun, Evaluation, Record, RunAssignment, RunCluster
from llmscope.db.queries import load_run_report
from tests.analysis.http_fakes import fake_llm
from tests.analysis.traffic import NOW, seed_traffic
from tests.conftest import free_port, start_cli_server, wait_for_http
from tests.evaluate.evaluations.support import JUDGE, write_config


def seed_recent(engine: Engine, per_window: int = 40) -> None:
    """The analysis tests' scenario, moved so that its "now" is the wall clock's."""
    seed_traffic(engine, per_window=per_window)
    shift = datetime.now(UTC) - NOW
    with Session(engine) as session:
        for record in session.scalars(select(Record)):
            record.timestamp = record.timestamp + shift
        session.commit()


def runs_are_whole(engine: Engine) -> int:
    """Every stored run has all its clusters and assignments; returns how many runs there are."""
    with Session(engine) as session:
        runs = session.scalars(select(AnalysisRun)).all()
        for run in runs:
            clusters = session.scalar(select(func.count()).where(RunCluster.run_id == run.id))
            assigned = session.scalar(select(func.count()).where(RunAssignment.run_id == run.id))
            report = run.report
            assert clusters == len(report["clusters"]) > 0
            assert assigned == report["baseline"]["records"] + report["current"]["records"]
        return len(runs)


def start_worker(
    database_url: str, tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = start_cli_server(
        ["worker", "--database-url", database_url, "--port", str(port), *extra],
        env={"LLMSCOPE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health", proc)
    return proc, base


def read_until(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 540) -> list[str]:
    """The worker's output lines up to the first one matching ``pattern``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            raise AssertionError(f"the worker exited before {pattern!r}:\n{''.join(lines)}")
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no {pattern!r} within {timeout}s:\n{''.join(lines)}")


def test_durations() -> None:
    assert [interval(t) for t in ("90s", "15m", "1h", "1d", "2.5", "1.5h")] == [
        90,
        900,
        3600,
        86400,
        2.5,
        5400,
    ]
    for bad in ("", "0", "1w", "-5m", "h"):
        with pytest.raises(Exception, match="not a duration"):
            interval(bad)


def test_the_analysis_lock_admits_one_holder(database_url: str) -> None:
    engines = [make_engine(database_url), make_engine(database_url)]
    first, second = (AnalysisLock(e) for e in engines)
    with first.hold() as mine:
        assert mine
        with second.hold() as theirs:
            assert not theirs  # held by the other worker
    with second.hold() as theirs:
        assert theirs  # released when the first is done
    for engine in engines:
        engine.dispose()


@pytest.mark.e2e
def test_two_workers_never_run_two_analyses_at_once(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    seed_recent(engine)
    workers = [start_worker(database_url, tmp_path, "--analyze-every", "1h") for _ in range(2)]
    seen: list[str] = ["", ""]
    try:
        # The second starts while the first runs: it finds the lock taken.
        for i, (proc, _) in enumerate(workers):
            seen[i] = "".join(read_until(proc, r"analysis (finished|skipped)"))
    finally:
        for proc, _ in workers:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=540)[0].decode() for proc, _ in workers]
    logs = [before + after for before, after in zip(seen, outputs, strict=True)]
    assert any("analysis skipped: another worker is running one" in log for log in logs)
    spans = [span for log in logs for span in spans_of(log.splitlines())]
    assert [proc.returncode for proc, _ in workers] == [0, 0]
    spans.sort()
    assert len(spans) >= 1
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two analyses overlapped: {spans}"
    assert runs_are_whole(engine) == len(spans)  # every run that started was stored whole
    engine.dispose()


def spans_of(lines: list[str]) -> list[tuple[float, float]]:
    """(start, end) wall-clock seconds of each analysis run in a worker's log lines."""
    found, started = [], None
    for line in lines:
        if re.match(r"\d{4}-", line) is None:
            continue
        moment = started_at(line)
        if "analysis started" in line:
            started = moment
        elif "analysis finished" in line and started is not None:
            found.append((started, moment))
            started = None
    return found


@pytest.mark.e2e
def test_a_killed_worker_leaves_nothing_half_written(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    seed_recent(engine)
    proc, _ = start_worker(database_url, tmp_path)
    read_until(proc, r"analysis started")
    time.sleep(1.0)  # in the middle of the run (loading the model, embedding, clustering)
    proc.kill()
    proc.wait()
    runs_are_whole(engine)  # no run, or a whole one
    # the lock died with the process: the next worker runs at once, and stores a whole run
    proc, base = start_worker(database_url, tmp_path)
    read_until(proc, r"analysis finished outcome=ok")
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert 'llmscope_worker_runs_total{outcome="ok"} 1.0' in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert runs_are_whole(engine) >= 1
    engine.dispose()


@pytest.mark.e2e
def test_sigterm_lets_the_run_in_progress_finish(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    seed_recent(engine)
    proc, _ = start_worker(database_url, tmp_path)
    read_until(proc, r"analysis started")
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=540)[0].decode()
    assert proc.returncode == 0, output
    assert "analysis finished outcome=ok" in output and "worker stopped" in output
    assert runs_are_whole(engine) == 1
    engine.dispose()


def refunds_fail(body: dict[str, Any]) -> str:
    """A judge that fails every answer to a refund question (its input), and passes the rest."""
    graded = [m["content"] for m in body["messages"] if m["role"] == "user"][0]
    question = graded.split("Output:", 1)[0]
    failed = "refund" in question or "money back" in question
    score = 1 if failed else 5
    return json.dumps({"score": score, "justification": "graded by the test's fake judge"})


@pytest.mark.e2e
def test_a_scheduled_run_tests_the_online_evaluations(database_url: str, tmp_path: Path) -> None:
    """The worker judges new records online and its scheduled analysis tests those verdicts."""
    engine = make_engine(database_url)
    seed_recent(engine)
    with Session(engine) as session:
        analysed = session.scalar(select(func.count()).where(Record.internal.is_(False)))
    with fake_llm(default=refunds_fail) as judge:
        config = write_config(tmp_path / "gateway.yaml", judge.url, JUDGE)
        port = free_port()
        # A short period: the test waits for the first run to start after the last verdict,
        # which is at most one period after the run in progress then ends.
        proc = start_cli_server(
            [
                "worker",
                "--database-url",
                database_url,
                "--port",
                str(port),
                "--analyze-every",
                "2s",
            ],  # fmt: skip
            env={
                "LLMSCOPE_DATA_DIR": str(tmp_path / "data"),
                "LLMSCOPE_GATEWAY_CONFIG": str(config),
                "PYTHONUNBUFFERED": "1",
            },
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", proc)
            deadline = time.monotonic() + 300
            while judged(engine) < analysed:  # every analysed record, never an internal one
                assert time.monotonic() < deadline, f"{judged(engine)} of {analysed} judged"
                time.sleep(0.5)
            all_judged = time.time()
            # the first run that starts from here sees every verdict (an earlier one may not)
            while started_at(read_until(proc, r"analysis started")[-1]) < all_judged:
                pass
            read_until(proc, r"analysis finished outcome=ok")
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=540)[0].decode()
        assert proc.returncode == 0, output
        assert len(judge.requests) == analysed  # each record judged once
    with Session(engine) as session:
        failed = session.scalar(select(func.count()).where(Evaluation.passed.is_(False)))
    assert failed and 0 < failed < analysed
    for result, count in (("fail", failed), ("pass", analysed - failed)):
        line = f'llmscope_evaluations_total{{evaluator="correctness",result="{result}"}}'
        assert f"{line} {float(count)}" in metrics, metrics
    with Session(engine) as session:
        report = load_run_report(session)  # the latest run
    engine.dispose()
    assert report is not None
    entry = report.evaluators["correctness"]
    refunds = report.current.records // 4  # the current window's topics take turns, 4 of them
    assert entry.evaluated == report.current.records and entry.failed == refunds
    flagged = [c for c in report.clusters if "correctness" in c.evaluations]
    hot = [c for c in flagged if c.evaluations["correctness"].flagged]
    assert hot, "the refund cluster's judge failures were not flagged"
    for cluster in hot:
        assert any("refund" in k or "money" in k for k in cluster.keywords), cluster.keywords


def started_at(line: str) -> float:
    """The wall-clock time of a worker's log line."""
    stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", line)
    assert stamp is not None, line
    return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def judged(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(Evaluation.status != "pending")) or 0
