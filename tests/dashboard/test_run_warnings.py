"""The dashboard shows a run's ``warnings`` and its untested verdicts as such."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from llmscope.dashboard.app import render_path
from llmscope.dashboard.data import cache
from llmscope.report import Drift, GlobalDrift, RunReport
from tests.dashboard.seed import SeededStore, seed_store
from tests.dashboard.test_app import by_id, text_of
from tests.dashboard.test_findings_pages import rewrite

SAID = (
    "the baseline window 2026-11-12T12:00:00Z → 2026-11-19T12:00:00Z has 0 records: "
    "drift was not tested"
)


@pytest.fixture
def seeded(engine: Engine) -> SeededStore:
    return seed_store(engine, records=120)


def _untested(report: RunReport) -> None:
    report.warnings = [SAID]
    report.global_drift = GlobalDrift(
        statistic=None, p_value=None, flagged=False, method="not tested"
    )
    for c in report.clusters:
        c.drift = Drift(kind="not tested", score=None, p_value=None, q_value=None, flagged=False)


def test_the_overview_and_the_clusters_page_show_the_warnings(
    engine: Engine, seeded: SeededStore
) -> None:
    rewrite(engine, seeded.run_id, _untested)
    cache.clear()
    search = f"?run={seeded.run_id}"
    for path in ("/", "/clusters"):
        shown = text_of(by_id(render_path(engine, path, search), "run-warnings"))
        assert SAID[:1].upper() + SAID[1:] + "." in shown, path
    overview = text_of(render_path(engine, "/", search))
    assert "Global drift not tested" in overview
    clusters = text_of(render_path(engine, "/clusters", search))
    assert "not tested" in clusters and "stable" not in clusters


def test_a_run_without_warnings_shows_none(engine: Engine, seeded: SeededStore) -> None:
    cache.clear()
    for path in ("/", "/clusters"):
        layout = render_path(engine, path, f"?run={seeded.run_id}")
        with pytest.raises(StopIteration):
            by_id(layout, "run-warnings")
