"""``llmscope analyze`` and ``llmscope export clusters``, as a user types them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select

from llmscope.app.cli import main
from llmscope.config import Settings
from llmscope.db.models import RunAssignment
from tests.analysis.test_job import model  # noqa: F401  (the session's loaded model)
from tests.analysis.traffic import BASELINE, CURRENT, seed_traffic


@pytest.mark.slow
def test_analyze_json_then_export_every_format(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: None,  # noqa: F811
) -> None:
    seed_traffic(engine, per_window=60)
    url = ["--database-url", settings.database_url]
    code = main(["analyze", "--json", "--baseline", BASELINE, "--current", CURRENT, *url])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["current"]["records"] == 60 and report["clusters"]

    with engine.connect() as conn:
        expected = {
            (r, c, w)
            for r, c, w in conn.execute(
                select(RunAssignment.record_id, RunAssignment.cluster_id, RunAssignment.window)
            )
        }
    assert len(expected) == 120

    assert main(["export", "clusters", "--format", "csv", "-o", str(tmp_path / "a.csv"), *url]) == 0
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "record_id",
        "cluster_id",
        "window",
        "subcluster_id",
        "session_id",
        "rephrased",
        "regenerated",
    ]
    assert {(r["record_id"], int(r["cluster_id"]), r["window"]) for r in rows} == expected
    # subcluster_id: empty, or a sub-cluster of the report lying inside the record's cluster.
    parent = {c["id"]: c.get("parent") for c in report["clusters"]}
    for r in rows:
        if r["subcluster_id"]:
            top = int(r["subcluster_id"])
            assert parent[top] is not None
            while parent[top] is not None:
                top = parent[top]
            assert top == int(r["cluster_id"])

    run = ["--run", report["run_id"]]
    assert main(["export", "clusters", *run, "--format", "jsonl", *url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {(d["record_id"], d["cluster_id"], d["window"]) for d in map(json.loads, lines)} == (
        expected
    )

    out = tmp_path / "a.parquet"
    assert main(["export", "clusters", "--format", "parquet", "-o", str(out), *url]) == 0
    table = pq.read_table(out).to_pylist()
    assert {(d["record_id"], d["cluster_id"], d["window"]) for d in table} == expected


def test_export_of_an_unknown_run_exits_2(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", "clusters", "--run", "nope", "--database-url", settings.database_url])
    assert code == 2
    assert "no analysis run 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--current", "last week"], "not an ISO 8601 interval"),
        (["--baseline", "2026-11-08T00:00:00Z/2026-11-01T00:00:00Z"], "start must be before"),
        (["--current", "2026-11-01T00:00:00Z/2026-11-02T00:00:00Z",
          "--baseline", "2026-11-01T12:00:00Z/2026-11-03T00:00:00Z"], "overlap"),
    ],
)  # fmt: skip
@pytest.mark.e2e
def test_bad_intervals_exit_2_with_one_line(
    args: list[str], problem: str, settings: Settings
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmscope",
            "analyze",
            *args,
            "--database-url",
            settings.database_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1
