"""Try a fix from a cluster's page, in a real headless Chromium: ``llmscope dashboard`` and
``llmscope serve --config`` each in its own process over one store, the gateway's provider and
judge faked in this process. The person pastes a candidate template, runs it, watches the
progress, then reads the verdict and the answers side by side."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from llmscope.db import make_engine, make_sessionmaker, session_scope, upgrade
from llmscope.db.models import AnalysisRun, Experiment
from llmscope.report import (
    ClusterEntry,
    ClusterSummary,
    Drift,
    FeedbackCounts,
    GlobalDrift,
    Hotspot,
    LatencySlice,
    RunReport,
    TokenSlice,
    WindowInfo,
)
from tests.conftest import cli_server
from tests.dashboard.chromium import chromium
from tests.dashboard.test_browser import screenshot, wait_for, wait_text
from tests.evaluate.experiments.support import RUN_ID, START, cluster_records, seed_run
from tests.evaluate.experiments.world import N, world
from tests.evaluate.experiments.world import rows as stored

pytestmark = pytest.mark.browser
FIX = "Answer the customer question {{question}} with the refund policy in force today."


def _cluster(cid: int, size: int, title: str) -> ClusterEntry:
    return ClusterEntry(
        id=cid,
        size=size,
        baseline_count=0,
        current_count=size,
        baseline_share=0.0,
        current_share=0.5,
        keywords=["refund"],
        drift=Drift(kind="new", score=5.0, p_value=0.001, q_value=0.002, flagged=True),
        feedback=FeedbackCounts(rated=2, down=2, down_rate=1.0),
        hotspot=Hotspot(lift=2.0, p_value=0.01, q_value=0.02, flagged=True),
        latency_ms=LatencySlice(p50=310.0, p95=320.0),
        tokens=TokenSlice(input_p50=20, output_p50=21),
        summary=ClusterSummary(title=title, text="Refund questions.", generated_by="extractive"),
    )


def seed(url: str) -> None:
    """The experiments' seeded run, with a run report the cluster page can show."""
    seed_run(
        url,
        {0: cluster_records(N), 1: cluster_records(5, prefix="c1", version="2")},
        thumbs_down=["c0-0003", "c0-0007"],
    )
    report = RunReport(
        run_id=RUN_ID,
        created_at=START + timedelta(days=1),
        baseline=WindowInfo(start=START - timedelta(days=7), end=START, records=0),
        current=WindowInfo(start=START, end=START + timedelta(days=1), records=N + 5),
        global_drift=GlobalDrift(statistic=0.1, p_value=0.5, flagged=False, method="energy"),
        clusters=[_cluster(0, N, "Outdated refund policy"), _cluster(1, 5, "Refunds today")],
        alerts=[],
    )
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        row = session.get(AnalysisRun, RUN_ID)
        assert row is not None
        row.report = report.model_dump(mode="json")
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    seed(url)
    return url


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def test_try_a_fix_runs_shows_progress_then_the_verdict_and_answers(
    store: str, tmp_path: Path, browser: WebDriver
) -> None:
    url = store
    env = {"LLMSCOPE_DATA_DIR": str(tmp_path / "data"), "LLMSCOPE_EXPERIMENT_CONCURRENCY": "1"}
    with (
        world(url, tmp_path, delay=0.05) as w,
        cli_server(["serve", "--config", str(w.config), "--database-url", url], env=env) as api,
        cli_server(["dashboard", "--database-url", url, "--collector-url", api]) as dash,
    ):
        browser.get(f"{dash}/clusters/0?run={RUN_ID}")
        wait_for(browser, "#tryfix-text")
        evaluators = browser.find_elements(By.CSS_SELECTOR, "#tryfix-evaluators input")
        assert len(evaluators) == 2 and all(e.is_selected() for e in evaluators)
        run = browser.find_element(By.ID, "tryfix-run")
        for box in evaluators:
            box.click()  # none chosen: Run waits, and says so
        WebDriverWait(browser, 5).until(lambda d: not run.is_enabled())
        assert browser.find_element(By.ID, "tryfix-choose").is_displayed()
        evaluators[0].click()  # judge by correctness only
        WebDriverWait(browser, 5).until(lambda d: run.is_enabled())
        assert not browser.find_element(By.ID, "tryfix-choose").is_displayed()
        assert (
            "No experiment on this cluster yet"
            in browser.find_element(By.ID, "tryfix-history").text
        )
        browser.find_element(By.ID, "tryfix-text").send_keys(FIX)
        browser.find_element(By.ID, "tryfix-temperature").send_keys("0.2")
        # The moment the verdict reaches the page, taken by the page itself (selenium's own
        # round trips on a loaded machine would add their delay to the measure).
        browser.execute_script(
            "new MutationObserver(() => { if (!window.__verdict_at && "
            "document.getElementById('tryfix-verdict')) window.__verdict_at = Date.now(); })"
            ".observe(document.body, {subtree: true, childList: true});"
        )
        browser.find_element(By.ID, "tryfix-run").click()

        wait_for(browser, "#tryfix-bar")
        bar = browser.find_element(By.ID, "tryfix-bar")
        assert int(bar.get_attribute("value") or 0) < int(bar.get_attribute("max") or 0)
        run = browser.find_element(By.ID, "tryfix-run")
        assert not run.is_enabled()  # while it runs, Run cannot start a second experiment
        browser.execute_script("arguments[0].click()", run)
        wait_text(browser, "#tryfix-count", f"of {2 * N}")
        # Its own experiment is listed under the panel while it runs, never "no experiment yet".
        wait_for(browser, "#cluster-experiments")
        history = browser.find_element(By.ID, "tryfix-history").text
        assert "No experiment on this cluster yet" not in history
        assert "running" in browser.find_element(By.ID, "cluster-experiments").text
        screenshot(browser, "tryfix-1-running")

        wait_text(browser, "#tryfix-verdict", "The candidate is better", timeout=60)
        shown = browser.execute_script("return window.__verdict_at") / 1000
        (experiment,) = stored(url, Experiment)
        assert experiment.finished_at is not None
        finished = experiment.finished_at.replace(tzinfo=UTC).timestamp()
        # The verdict within a second of the experiment finishing: a half-second poll, then
        # the verdict alone (the answers follow), so a loaded machine still has room.
        assert shown - finished < 1.0
        assert "better" in browser.find_element(By.ID, "cluster-experiments").text
        assert browser.find_element(By.ID, "tryfix-count").text.strip() == (
            f"answered and judged {2 * N} of {2 * N}"
        )
        verdict = browser.find_element(By.ID, "tryfix-verdict").text
        assert "pass rate 0.0% → 100.0%" in verdict and "McNemar p=" in verdict
        assert "95% CI" in verdict
        summary = browser.find_element(By.ID, "experiment-summary").text
        assert "baseline (production)" in summary and "better" in summary
        wait_for(browser, "#experiment-answers tbody tr")  # the answers follow the verdict
        rows = browser.find_elements(By.CSS_SELECTOR, "#experiment-answers tbody tr")
        assert len(rows) == N
        first = rows[0].text
        assert "outdated 2025 refund policy" in first and "in force today" in first
        assert "correctness" in first and "refusal" not in first
        screenshot(browser, "tryfix-2-verdict")
        assert browser.find_elements(By.ID, "tryfix-error") == []
        WebDriverWait(browser, 5).until(lambda d: d.find_element(By.ID, "tryfix-run").is_enabled())
    assert len(w.provider.requests) == N  # one experiment, though Run was pressed twice
    assert len(stored(url, Experiment)) == 1
    assert all(r["body"]["temperature"] == 0.2 for r in w.provider.requests)


def test_without_a_reachable_collector_the_panel_says_how_to_enable_it(
    store: str, browser: WebDriver
) -> None:
    url = store
    nowhere = "http://127.0.0.1:9"  # the discard port: nothing listens
    with cli_server(["dashboard", "--database-url", url, "--collector-url", nowhere]) as dash:
        browser.get(f"{dash}/clusters/0?run={RUN_ID}")
        wait_text(browser, "#tryfix-error", "cannot reach the collector at http://127.0.0.1:9")
        text = browser.find_element(By.ID, "tryfix").text
        assert "--collector-url" in text and "llmscope serve --config" in text
        WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.ID, "tryfix-run") == [])
