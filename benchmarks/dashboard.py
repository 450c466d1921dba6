"""Dashboard speed: the first render of every page, cold, against 1 s on the 3,000-call demo and
2 s on a 100,000-record store, beside the baseline code measured in the same run.

Every measurement starts a fresh ``llmscope dashboard`` process (nothing imported, nothing
memoised: what the first person after a restart waits) on a free port and asks it for one page:

* server: what a browser asks for on a first visit (``/``, ``/_dash-layout`` with the page as
  its Referer, ``/_dash-dependencies``, and the router callback when the layout leaves the page
  to it, as the code before the layout-first render did), wall seconds and the process's CPU
  seconds;
* chromium (``--browser``): Debian's headless Chromium navigates to the page; the time is from
  navigation start to the page drawn (its title present, every chart of the page drawn, no
  spinner), read in the page with ``performance.now()``, with the CPU seconds of Chromium's
  processes and the page's main-thread and JavaScript seconds as DevTools counts them
  (``Performance.getMetrics``: TaskDuration, ScriptDuration). The browser's cache holds the
  JavaScript bundles from an earlier visit, as a returning user's does.

Stores: the demo (``llmscope demo --no-dashboard``, 3,000 calls, ``--now`` pinned) and N seeded
records (the test suite's store generator: feedback on ~30%, one analysis run with its map) on
SQLite and, with ``--postgres-url``, on PostgreSQL. The baseline is another source tree (e.g.
``git archive <commit> | tar -x -C /tmp/base``) given as ``--baseline-src``; its dashboard is
started from there on the same stores.

    python benchmarks/dashboard.py --records 100000 --browser --baseline-src /tmp/base \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.dashboard.seed and tests.dashboard.chromium
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import free_port, fresh_database, tree_cpu_seconds, wait_healthy  # noqa: E402
from sqlalchemy import text  # noqa: E402

from llmscope.db import make_engine  # noqa: E402

DEMO_TARGET_S = 1.0
LARGE_TARGET_S = 2.0
DEMO_NOW = "2026-12-01T00:00:00Z"

# In the page: the moment (ms since navigation start) the page is first drawn, i.e. it has a
# title, every chart in it has drawn its SVG, and no loading spinner shows. Checked every frame.
DRAWN_PROBE = """
(function () {
  function drawn() {
    var page = document.getElementById('page');
    if (!page || !page.querySelector('.page-title')) return false;
    if (document.querySelector('._dash-loading, .dash-spinner, ._dash-loading-callback'))
      return false;
    var graphs = page.querySelectorAll('.dash-graph');
    for (var i = 0; i < graphs.length; i++)
      if (!graphs[i].querySelector('.main-svg')) return false;
    var want = window.localStorage.getItem('llmscope-bench-selector');
    if (want && !page.querySelector(want)) return false;
    return true;
  }
  function check() {
    if (window.__drawnAt === undefined && drawn()) { window.__drawnAt = performance.now(); return; }
    if (window.__drawnAt === undefined) requestAnimationFrame(check);
  }
  requestAnimationFrame(check);
})();
"""


@dataclass
class Page:
    label: str
    path: str
    selector: str  # what must be on the page for it to count as drawn (besides title, charts)


@dataclass
class Code:
    name: str  # "new" or "baseline"
    src: Path


def pages_of(url: str) -> list[Page]:
    """Every page of the dashboard on this store: the cluster page of the most severe finding,
    the record page of one of its calls, the map coloured each way."""
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.scalar(
            text("SELECT report FROM analysis_runs ORDER BY created_at DESC LIMIT 1")
        )
        record_id = conn.scalar(text("SELECT id FROM records ORDER BY timestamp DESC LIMIT 1"))
    engine.dispose()
    report = json.loads(stored) if isinstance(stored, str) else stored  # JSON on PostgreSQL
    findings = report.get("findings") or []
    cluster = findings[0]["cluster_id"] if findings else report["clusters"][0]["id"]
    pages = [
        Page("overview", "/", "#chart-calls"),
        Page("clusters list", "/clusters", "#clusters-table"),
    ]
    for color in ("finding", "cluster", "window", "feedback"):
        pages.append(Page(f"map by {color}", f"/clusters?color={color}", "#cluster-map"))
    pages += [
        Page(f"cluster {cluster}", f"/clusters/{cluster}", "#cluster-stats"),
        Page("record", f"/records/{record_id}", "#record-response"),
        Page("evaluators", "/evaluators", ".page-title"),
        Page("experiments", "/experiments", ".page-title"),
    ]
    return pages


@contextmanager
def dashboard(code: Code, url: str, port: int) -> Iterator[tuple[str, int]]:
    """A fresh ``llmscope dashboard`` process of ``code`` on ``port``: (base URL, pid)."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{code.src}{os.pathsep}{code.src / 'sdk' / 'src'}",
        "LLMSCOPE_DATA_DIR": tempfile.gettempdir(),
    }
    command = [sys.executable, "-m", "llmscope", "dashboard", "--database-url", url, "--port"]
    proc = subprocess.Popen(
        [*command, str(port)],
        cwd=code.src,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, 120, f"the {code.name} dashboard", poll=0.05)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _page_children(layout: Any) -> Any:
    """The children of the layout's ``page`` element (None: the page is left to a callback)."""
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == "page":
                return props.get("children")
            stack.append(props.get("children"))
    return None


def server_first_render(base: str, pid: int, path: str) -> tuple[float, float]:
    """Wall and CPU seconds of a first visit's requests to a fresh process, as a browser sends
    them (the layout request names its page by its Referer), up to the page's layout: in the
    layout answer, or else from the router callback."""
    pathname, _, search = path.partition("?")
    search = f"?{search}" if search else ""
    cpu = tree_cpu_seconds(pid)
    start = time.perf_counter()
    with httpx.Client(base_url=base, timeout=300) as http:
        assert http.get(path).status_code == 200
        layout = http.get("/_dash-layout", headers={"Referer": base + path})
        assert layout.status_code == 200
        dependencies = http.get("/_dash-dependencies").json()
        if _page_children(layout.json()) is None:
            router = next(d for d in dependencies if "page.children" in d["output"])
            answer = http.post(
                "/_dash-update-component",
                json={
                    "output": router["output"],
                    "outputs": [
                        {"id": "page", "property": "children"},
                        {"id": "nav", "property": "children"},
                    ],
                    "inputs": [
                        {"id": "url", "property": "pathname", "value": pathname},
                        {"id": "url", "property": "search", "value": search},
                    ],
                    "changedPropIds": ["url.pathname"],
                    "state": [],
                },
            )
            assert answer.status_code in (200, 204), answer.text[:300]
    return time.perf_counter() - start, tree_cpu_seconds(pid) - cpu


@dataclass
class Drawn:
    seconds: float  # navigation start to the page drawn
    cpu: float  # CPU seconds of Chromium's processes meanwhile
    task: float  # the page's main-thread busy seconds (DevTools' TaskDuration)
    script: float  # of which running JavaScript (DevTools' ScriptDuration)


def profile_summary(profile: dict[str, Any], shown: int = 6) -> str:
    """Where a DevTools CPU profile's samples fell, by script file (self time, ms), e.g.
    ``plotly.min.js 355, dash_renderer.min.js 310, (idle) 290, (program) 270``."""
    frames = {node["id"]: node["callFrame"] for node in profile["nodes"]}
    spent: Counter[str] = Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = frames[sample]
        where = frame["url"].rsplit("/", 1)[-1].split("?")[0] or frame["functionName"]
        spent[re.sub(r"\.v[0-9_]+m[0-9]+", "", where)] += delta
    return ", ".join(f"{where} {us / 1000:.0f}" for where, us in spent.most_common(shown))


def browser_first_render(
    driver: Any, base: str, page: Page, profile_to: Path | None = None
) -> Drawn:
    """Seconds from navigation start to the page drawn, in Chromium, the CPU seconds
    Chromium's processes spent meanwhile (up to when the probe was read), and the page's own
    main-thread and JavaScript seconds as DevTools counts them (its thread time, so they
    stretch less than the wall clock on a busy machine). With ``profile_to``, the page's
    JavaScript CPU profile up to the page drawn is written there (open it in DevTools'
    Performance panel) and summed up by script on stdout."""
    driver.get(base + "/health")  # same origin, to set the probe's selector
    driver.execute_script(
        "window.localStorage.setItem('llmscope-bench-selector', arguments[0])", page.selector
    )
    driver.execute_cdp_cmd("Performance.enable", {"timeDomain": "threadTicks"})
    if profile_to is not None:
        driver.execute_cdp_cmd("Profiler.enable", {})
        driver.execute_cdp_cmd("Profiler.setSamplingInterval", {"interval": 500})
        driver.execute_cdp_cmd("Profiler.start", {})
    browser = driver.service.process.pid
    cpu = tree_cpu_seconds(browser)
    driver.get(base + page.path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        drawn = driver.execute_script("return window.__drawnAt")
        if drawn is not None:
            used = tree_cpu_seconds(browser) - cpu
            if profile_to is not None:
                profile = driver.execute_cdp_cmd("Profiler.stop", {})["profile"]
                profile_to.write_text(json.dumps(profile))
                print(f"  {profile_to.name}: {profile_summary(profile)}", flush=True)
            metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
            counted = {m["name"]: float(m["value"]) for m in metrics}
            return Drawn(
                float(drawn) / 1000, used, counted["TaskDuration"], counted["ScriptDuration"]
            )
        time.sleep(0.02)
    raise RuntimeError(f"{page.path} was not drawn within 120 s")


def measure(
    store: str,
    url: str,
    target: float,
    codes: list[Code],
    browser: bool,
    repeat: int,
    only: str | None,
    profiles: Path | None = None,
) -> list[dict[str, Any]]:
    from tests.dashboard.chromium import chromium

    pages = [p for p in pages_of(url) if not only or any(w in p.label for w in only.split(","))]
    port = free_port()  # one port for every process: the browser's cache survives restarts
    rows: list[dict[str, Any]] = []
    with chromium(page_load_timeout=300) if browser else _nothing() as driver:
        if driver is not None:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": DRAWN_PROBE})
            for code in codes:  # fill the browser's cache with each code's bundles
                with dashboard(code, url, port) as (base, _):
                    warm = Page("warm-up", "/evaluators", ".page-title")
                    browser_first_render(driver, base, warm)
        for page in pages:
            row: dict[str, Any] = {"store": store, "page": page.label, "path": page.path}
            for code in codes:
                walls: list[float] = []
                cpus: list[float] = []
                drawn: list[Drawn] = []
                for _ in range(repeat):
                    with dashboard(code, url, port) as (base, pid):
                        wall, cpu = server_first_render(base, pid, page.path)
                    walls.append(wall)
                    cpus.append(cpu)
                    if driver is not None:
                        name = re.sub(r"\W+", "-", f"{store} {page.label} {code.name} {len(drawn)}")
                        to = profiles / f"{name}.cpuprofile" if profiles else None
                        with dashboard(code, url, port) as (base, _):
                            drawn.append(browser_first_render(driver, base, page, to))
                row[code.name] = {
                    "server": statistics.median(walls),
                    "cpu": statistics.median(cpus),
                    "chromium": statistics.median(d.seconds for d in drawn) if drawn else None,
                    "chromium_cpu": statistics.median(d.cpu for d in drawn) if drawn else None,
                    "main_thread": statistics.median(d.task for d in drawn) if drawn else None,
                    "script": statistics.median(d.script for d in drawn) if drawn else None,
                }
            rows.append(row)
            print_row(row, codes, target)
    return rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def print_row(row: dict[str, Any], codes: list[Code], target: float) -> None:
    cells = []
    for code in codes:
        got = row[code.name]
        chromium = (
            f"{got['chromium']:6.2f} {got['chromium_cpu']:6.2f} {got['main_thread']:6.2f} "
            f"{got['script']:6.2f}"
            if got["chromium"] is not None
            else "     -      -      -      -"
        )
        cells.append(f"{got['server']:6.2f} {got['cpu']:6.2f} {chromium}")
    judged = row[codes[0].name]
    first = judged["chromium"] if judged["chromium"] is not None else judged["server"]
    verdict = "ok" if first <= target else "SLOW"
    print(f"{row['store']:10} {row['page']:18} " + "   ".join(cells) + f"   {verdict}", flush=True)


def demo_store(workdir: Path) -> str:
    """The demo's store, filled by ``llmscope demo`` itself (replay, embedding, analysis)."""
    url = f"sqlite:///{workdir / 'demo.db'}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "llmscope",
            "demo",
            "--no-dashboard",
            "--database-url",
            url,
            "--now",
            DEMO_NOW,
        ],  # fmt: skip
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "LLMSCOPE_DATA_DIR": str(workdir)},
    )
    return url


def seeded_store(kind: str, pg_url: str | None, workdir: Path, records: int) -> tuple[str, Any]:
    from tests.dashboard.seed import seed_store

    url, cleanup = fresh_database(kind, pg_url, workdir)
    engine = make_engine(url)
    seed_store(engine, records=records, old_run=False)
    engine.dispose()
    return url, cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="measurements per page (median)")
    parser.add_argument("--postgres-url", help="also a seeded store in a fresh database here")
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    parser.add_argument("--baseline-src", type=Path, help="a source tree of the baseline code")
    parser.add_argument("--demo-url", help="an existing demo store instead of building one")
    parser.add_argument("--sqlite-url", help="an existing seeded SQLite store instead of seeding")
    parser.add_argument("--pages", help="only pages whose label holds one of these words")
    parser.add_argument(
        "--cpu-profile",
        type=Path,
        help="with --browser: write each page's DevTools CPU profile to this directory",
    )
    parser.add_argument(
        "--stores", default="demo,sqlite,postgresql", help="which stores (comma-separated)"
    )
    args = parser.parse_args()
    if args.cpu_profile:
        args.cpu_profile.mkdir(parents=True, exist_ok=True)

    codes = [Code("new", ROOT)]
    if args.baseline_src:
        codes.append(Code("baseline", args.baseline_src.resolve()))
    wanted = set(args.stores.split(","))
    heads = "   ".join(f"{c.name + ': server, cpu, chromium, cpu, main, js s':48}" for c in codes)
    print(f"load average {os.getloadavg()}")
    print(f"{'store':10} {'page':18} {heads}")
    options = (codes, args.browser, args.repeat, args.pages, args.cpu_profile)
    with tempfile.TemporaryDirectory(prefix="llmscope-dashboard-bench-") as tmp:
        workdir = Path(tmp)
        if "demo" in wanted:
            url = args.demo_url or demo_store(workdir)
            measure("demo", url, DEMO_TARGET_S, *options)
        if "sqlite" in wanted:
            if args.sqlite_url:
                url, cleanup = args.sqlite_url, None
            else:
                url, cleanup = seeded_store("sqlite", None, workdir, args.records)
            measure("sqlite", url, LARGE_TARGET_S, *options)
        if "postgresql" in wanted and args.postgres_url:
            url, cleanup = seeded_store("postgresql", args.postgres_url, workdir, args.records)
            try:
                measure("postgresql", url, LARGE_TARGET_S, *options)
            finally:
                cleanup()
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
