"""A person's walk through the dashboard in a real headless Chromium, against ``llmscope
dashboard`` served in its own process over a seeded store: overview → clusters → the problem
cluster → one of its records. Screenshots land in ``test-artifacts/``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from llmscope.config import Settings
from llmscope.dashboard.app import create_app
from llmscope.db import make_engine, upgrade
from tests.conftest import cli_server
from tests.dashboard.chromium import chromium
from tests.dashboard.seed import XSS_PROMPT, XSS_RECORD_ID, SeededStore, seed_store

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SeededStore]]:
    """``llmscope dashboard`` on a free port over a seeded SQLite store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    seeded = seed_store(engine, records=500)
    engine.dispose()
    with cli_server(["dashboard", "--database-url", url]) as base:
        yield base, seeded


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def wait_for(driver: WebDriver, css: str, timeout: float = 20) -> None:
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_text(driver: WebDriver, css: str, text: str, timeout: float = 20) -> None:
    WebDriverWait(driver, timeout).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
    )


def screenshot(driver: WebDriver, name: str) -> None:
    """A full-page screenshot (the window grown to the page's height)."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 40, 6000))
    driver.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))
    driver.set_window_size(1400, 1000)


def no_script_ran(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 (raises when there is no alert)
        return False
    except NoAlertPresentException:
        pass
    return driver.execute_script("return window.__llmscope_xss === undefined") is True


def test_drill_from_overview_to_a_record(
    served: tuple[str, SeededStore], browser: WebDriver
) -> None:
    base, seeded = served
    browser.get(base + "/")
    wait_for(browser, "#chart-calls .main-svg")
    wait_text(browser, ".page-title", "Overview")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Analysis run shown" in body and seeded.run_id in body
    assert f"{len(seeded.record_ids):,} records" in body
    assert "New cluster: CSV export failures after the update" in body
    screenshot(browser, "1-overview")

    browser.find_element(By.LINK_TEXT, "Clusters").click()
    wait_for(browser, "#clusters-table")
    wait_for(browser, "#cluster-map .main-svg")
    rows = browser.find_elements(By.CSS_SELECTOR, "#clusters-table tbody tr")
    assert len(rows) == len(seeded.report.clusters)
    assert "CSV export failures after the update" in rows[0].text  # the most severe first
    assert "Showing all" in browser.find_element(By.ID, "map-caption").text
    screenshot(browser, "2-clusters")

    # Colour the map by feedback: the URL carries it, so the view can be shared.
    browser.find_element(By.XPATH, "//label[normalize-space()='feedback']").click()
    WebDriverWait(browser, 20).until(lambda d: "color=feedback" in d.current_url)
    wait_text(browser, "#cluster-map", "thumbs-down")

    browser.find_element(By.PARTIAL_LINK_TEXT, "CSV export failures").click()
    wait_for(browser, "#summary-author")
    assert browser.find_element(By.ID, "summary-author").text == "LLM (gpt-4o-mini)"
    assert browser.find_element(By.CSS_SELECTOR, ".page-title").text == (
        "CSV export failures after the update"
    )
    chips = browser.find_elements(By.CSS_SELECTOR, "#cluster-keywords .badge")
    keywords = [chip.text for chip in chips]
    assert keywords == ["export", "csv", "invoice", "error"]
    shown = browser.find_elements(By.CSS_SELECTOR, "#cluster-records .record")
    assert any(XSS_PROMPT in r.text for r in shown)  # shown as text, not parsed as HTML
    assert "Download CSV" in browser.find_element(By.ID, "export-link").text
    assert no_script_ran(browser)
    screenshot(browser, "3-cluster")

    # Waited for, not looked up at once: on a loaded machine the records list may still be
    # re-rendering after the screenshot's window resize.
    link = (By.LINK_TEXT, XSS_RECORD_ID)
    WebDriverWait(browser, 20).until(ec.element_to_be_clickable(link)).click()
    wait_for(browser, "#record-prompt")
    assert browser.find_element(By.CSS_SELECTOR, "#record-prompt pre").text == XSS_PROMPT
    assert browser.find_elements(By.CSS_SELECTOR, "#record-prompt script, #record-prompt img") == []
    history = browser.find_element(By.ID, "feedback-history").text
    assert "thumbs-up" in history and "thumbs-down" in history and "counts" in history
    assert no_script_ran(browser)
    screenshot(browser, "4-record")


def test_a_pasted_deep_link_opens_the_same_view(
    served: tuple[str, SeededStore], browser: WebDriver
) -> None:
    base, seeded = served
    browser.get(f"{base}/clusters?run={seeded.old_run_id}&sort=size&feedback=down")
    wait_for(browser, "#clusters-table")
    rows = browser.find_elements(By.CSS_SELECTOR, "#clusters-table tbody tr")
    assert len(rows) == 2  # the older run had two clusters
    assert "in filter" in browser.find_element(By.ID, "clusters-table").text
    selected = browser.find_element(By.CSS_SELECTOR, ".page-actions").text
    assert seeded.old_run_id in selected


def test_a_first_visit_draws_the_page_from_the_layout_without_a_callback(
    served: tuple[str, SeededStore], browser: WebDriver
) -> None:
    """The page comes with Dash's layout answer: no router callback, and none of the callbacks
    its controls would fire if the page were inserted by one, is asked of the server."""
    base, _ = served
    browser.get(f"{base}/clusters?color=window")
    wait_for(browser, "#clusters-table")
    wait_for(browser, "#cluster-map .main-svg")
    asked = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    # Asked once, from the page's head: the renderer took that answer rather than asking again.
    assert len([name for name in asked if name.endswith("/_dash-layout")]) == 1
    assert [name for name in asked if "_dash-update-component" in name] == []
    names = browser.execute_script(
        "return document.getElementById('cluster-map').querySelector('.js-plotly-plot')"
        ".data.map(t => t.name)"
    )
    assert names[:2] == ["baseline", "current"]  # the view in the link
    browser.find_element(By.CSS_SELECTOR, "#clusters-table .cluster-link").click()
    wait_for(browser, "#cluster-stats")  # and the next page comes from the router, as before


def test_without_a_referer_the_router_renders_the_first_page(
    tmp_path: Path, browser: WebDriver
) -> None:
    """A browser (or proxy) that sends no Referer gets the shell alone from the layout request,
    and the page from the router callback, as before the layout-first render."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    seed_store(engine, records=200)
    engine.dispose()
    app = create_app(Settings(database_url=url, data_dir=tmp_path / "data"))
    app.index_string = app.index_string.replace(
        "<head>", '<head><meta name="referrer" content="no-referrer">', 1
    )
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_port}/clusters?color=window")
        wait_for(browser, "#clusters-table")
        wait_for(browser, "#cluster-map .main-svg")
        asked = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert [name for name in asked if "_dash-update-component" in name]  # the router
        names = browser.execute_script(
            "return document.getElementById('cluster-map').querySelector('.js-plotly-plot')"
            ".data.map(t => t.name)"
        )
        assert names[:2] == ["baseline", "current"]
    finally:
        server.shutdown()
        thread.join()
        app.server.config["LLMSCOPE_ENGINE"].dispose()


def test_subclusters_nest_under_their_parent_on_the_list_the_map_and_the_pages(
    served: tuple[str, SeededStore], browser: WebDriver
) -> None:
    base, seeded = served
    slow, today = sorted(seeded.subclusters)
    browser.get(f"{base}/clusters?run={seeded.run_id}")
    wait_for(browser, "#clusters-table")
    wait_for(browser, "#cluster-map .main-svg")
    rows = browser.find_elements(By.CSS_SELECTOR, "#clusters-table tbody tr")
    texts = [r.text for r in rows]
    at = next(i for i, t in enumerate(texts) if "Refund timing and double charges" in t)
    assert (
        "sub-cluster of #1" in texts[at + 1] and "Refunds slow to reach the card" in texts[at + 1]
    )
    assert (
        f"sub-cluster of #{slow}" in texts[at + 2] and "Refund delays asked today" in texts[at + 2]
    )
    assert "hotspot" in texts[at + 1] and "new" in texts[at + 2]  # their own flags
    assert "subcluster-row" in rows[at + 1].get_attribute("class")
    assert "subcluster-row" not in rows[at].get_attribute("class")
    lefts = [
        rows[at + k].find_element(By.CSS_SELECTOR, ".cluster-link").location["x"] for k in (0, 1, 2)
    ]
    assert lefts[0] < lefts[1] < lefts[2]  # indented, deeper further
    # On the map: one ring trace per sub-cluster, over points its parent's trace still draws.
    wait_text(browser, "#cluster-map", f"sub-cluster {slow} of 1: Refunds slow")
    traces = browser.execute_script(
        "return document.querySelector('#cluster-map .js-plotly-plot').data"
        ".map(t => [t.name, t.customdata, t.marker.symbol || 'circle'])"
    )
    rings = {name: ids for name, ids, symbol in traces if symbol == "circle-open"}
    ring = next(ids for name, ids in rings.items() if name.startswith(f"sub-cluster {slow} of 1"))
    assert sorted(ring) == sorted(seeded.subclusters[slow])
    assert any(name.startswith(f"sub-cluster {today} of {slow}") for name in rings)
    parent = next(ids for name, ids, _ in traces if name.startswith("1: "))
    assert set(ring) <= set(parent)
    screenshot(browser, "5-subclusters")

    rows[at + 1].find_element(By.CSS_SELECTOR, ".cluster-link").click()
    wait_for(browser, "#breadcrumb")
    wait_text(browser, ".page-title", "Refunds slow to reach the card")
    crumbs = browser.find_element(By.ID, "breadcrumb").text
    assert crumbs.startswith("All clusters › #1 Refund timing and double charges › #")
    shown = [
        a.text for a in browser.find_elements(By.CSS_SELECTOR, "#cluster-records .record-link")
    ]
    assert shown and set(shown) <= set(seeded.subclusters[slow])
    assert "Refund delays asked today" in browser.find_element(By.ID, "subclusters").text
    screenshot(browser, "6-subcluster")

    browser.find_element(By.CSS_SELECTOR, "#breadcrumb .breadcrumb-parent").click()
    wait_text(browser, ".page-title", "Refund timing and double charges")
    wait_for(browser, "#subclusters")
    listed = browser.find_element(By.ID, "subclusters")
    assert "Refunds slow to reach the card" in listed.text and "persistent" in listed.text
    assert browser.find_elements(By.ID, "breadcrumb") == []


def test_the_findings_lead_from_the_overview_to_their_evidence(
    served: tuple[str, SeededStore], browser: WebDriver
) -> None:
    """The overview's first finding is the report's first; its link opens a page whose first
    answers are the thumbs-down ones, with the rates and tags that make the case."""
    base, seeded = served
    report = seeded.report
    browser.get(base + "/")
    # the page is whole once its charts are drawn (earlier, a re-render can replace what was read)
    wait_for(browser, "#chart-calls .main-svg")
    wait_for(browser, "#findings li")
    items = browser.find_elements(By.CSS_SELECTOR, "#findings li")
    assert [i.find_element(By.TAG_NAME, "a").text for i in items[:2]] == [
        f.message for f in report.findings[:2]
    ]
    # Findings above the KPIs and charts; the run id stays inside its card.
    top = browser.find_element(By.ID, "findings").location["y"]
    assert top < browser.find_element(By.ID, "chart-calls").location["y"]
    run_stat = browser.find_element(By.XPATH, "//div[@class='stat-label'][text()='Run']/..")
    assert browser.execute_script(
        "return arguments[0].scrollWidth <= arguments[0].clientWidth", run_stat
    )
    screenshot(browser, "7-findings")

    browser.find_element(By.CSS_SELECTOR, "#findings li a").click()
    wait_for(browser, "#cluster-records .record")
    problem = report.cluster(seeded.problem_cluster)
    assert problem is not None and problem.summary is not None
    assert browser.find_element(By.CSS_SELECTOR, ".page-title").text == problem.summary.title
    found = browser.find_element(By.ID, "cluster-findings").text
    assert report.findings[0].message in found
    first = browser.find_elements(By.CSS_SELECTOR, "#cluster-records .record")[0]
    badges = [b.text for b in first.find_elements(By.CSS_SELECTOR, ".record-head .badge")]
    assert badges[:2] == ["thumbs-down", "incorrect"]  # the first example is a thumbs-down
    template = browser.find_element(By.ID, "down-by-template").text
    down, rated = problem.feedback.down, problem.feedback.rated
    assert f"{down} of {rated}" in template  # all its current ratings are on one version
    tags = browser.find_element(By.ID, "down-tags").text
    assert f"current window, {down} thumbs-down: incorrect" in tags
    stats = browser.find_element(By.ID, "cluster-stats").text
    assert f"p={problem.hotspot.p_value:.2g}" in stats
    wait_for(browser, "#chart-cluster-down .main-svg")
    screenshot(browser, "8-evidence")
