"""One report, with its timings: what ``analyze --json`` prints is what is stored and served."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import load_model
from llmscope.analysis.timings import STAGES
from llmscope.app.cli import main
from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db.models import AnalysisRun
from tests.analysis.traffic import BASELINE, CURRENT, seed_traffic


def test_printed_stored_and_served_reports_are_one(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    load_model("all-MiniLM-L6-v2")
    seed_traffic(engine, per_window=30)
    code = main(
        ["analyze", "--json", "--baseline", BASELINE, "--current", CURRENT,
         "--database-url", settings.database_url]
    )  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    with Session(engine) as session:
        run = session.scalars(select(AnalysisRun)).one()
        stored, params = run.report, run.params
    with TestClient(create_app(settings)) as client:
        served = client.get(f"/api/v1/analysis/runs/{printed['run_id']}").json()
        latest = client.get("/api/v1/analysis/runs/latest").json()
    assert printed == stored == served == latest
    # The timings are in the report itself, and they are the run's stored params.
    assert printed["params"] == params
    assert set(printed["params"]["timings"]) == set(STAGES)
    assert printed["params"]["seconds"] >= sum(printed["params"]["timings"].values()) - 0.01
    assert printed["params"]["embedding_backend"] == "torch"
