"""Dashboard speed: time from request to rendered layout for the overview and clusters pages on
a seeded store of N records (default 100,000), against the 2 s target.

For each store (SQLite file; PostgreSQL when --postgres-url is given) the script seeds N records
with feedback, an analysis run, its clusters and map, then times Dash's own callback endpoint
(``POST /_dash-update-component``: the router renders the page, serialised to JSON) for
``/``, ``/clusters`` and one cluster, several times each: cold (the pages' read memo emptied
first: what the first person to open a view waits) and warm right after. Baseline, side by
side: the same clusters page with the map unsampled (every point sent). With --browser it also
times Debian's headless Chromium from navigation to the drawn chart (cold).

    python benchmarks/dashboard.py --records 100000 \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test --browser
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.dashboard.seed

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from llmscope.config import Settings  # noqa: E402
from llmscope.dashboard import data  # noqa: E402
from llmscope.dashboard.app import create_app  # noqa: E402
from llmscope.dashboard.data import cache  # noqa: E402
from llmscope.db import make_engine, upgrade  # noqa: E402
from tests.dashboard.chromium import chromium  # noqa: E402
from tests.dashboard.seed import seed_store  # noqa: E402

TARGET_S = 2.0


def time_page(
    client: Any, output: str, path: str, search: str, repeat: int
) -> tuple[float, float, int]:
    """Median seconds of a cold render (the read memo emptied first) and of a warm one right
    after it, and the response bytes, of the router callback for ``path``."""
    body = {
        "output": output,
        "outputs": [{"id": "page", "property": "children"}, {"id": "nav", "property": "children"}],
        "inputs": [
            {"id": "url", "property": "pathname", "value": path},
            {"id": "url", "property": "search", "value": search},
        ],
        "changedPropIds": ["url.pathname"],
        "state": [],
    }
    cold, warm, size = [], [], 0
    for _ in range(repeat):
        cache.clear()
        for times in (cold, warm):
            start = time.perf_counter()
            answer = client.post("/_dash-update-component", json=body)
            times.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.text[:500]
            size = len(answer.data)
    return statistics.median(cold), statistics.median(warm), size


def browser_times(app: Any, paths: list[str]) -> dict[str, float]:
    """Seconds from navigation to the page's main chart drawn, in headless Chromium."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    out = {}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with chromium(page_load_timeout=120) as driver:
        # Warm the browser cache (plotly.js is 4 MB): people load it once, not per page.
        driver.get(base + "/records/none")
        WebDriverWait(driver, 60).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".page-title"))
        )
        for path, selector in paths:
            cache.clear()
            start = time.perf_counter()
            driver.get(base + path)
            WebDriverWait(driver, 60).until(
                ec.presence_of_element_located((By.CSS_SELECTOR, selector))
            )
            out[path] = time.perf_counter() - start
    server.shutdown()
    return out


def bench_store(name: str, url: str, records: int, repeat: int, browser: bool) -> None:
    engine = make_engine(url)
    upgrade(engine)
    start = time.perf_counter()
    seeded = seed_store(engine, records=records, old_run=False)
    print(f"[{name}] seeded {records:,} records in {time.perf_counter() - start:.1f} s")
    app = create_app(Settings(database_url=url))
    client = app.server.test_client()
    client.get("/")
    output = next(k for k in app.callback_map if "page.children" in k)
    time_page(client, output, "/", "", 1)  # warm-up: imports, plotly templates
    rows = [
        ("overview /", "/", ""),
        ("clusters /clusters", "/clusters", ""),
        ("clusters, coloured by feedback", "/clusters", "?color=feedback&sort=hotspot"),
        (f"cluster /clusters/{seeded.problem_cluster}", f"/clusters/{seeded.problem_cluster}", ""),
    ]
    print(
        f"[{name}] {'page':38} {'cold s':>8} {'warm s':>8} {'response':>10}  "
        f"target {TARGET_S:.1f} s (cold)"
    )
    for label, path, search in rows:
        cold, warm, size = time_page(client, output, path, search, repeat)
        verdict = "ok" if cold <= TARGET_S else "SLOW"
        print(f"[{name}] {label:38} {cold:8.3f} {warm:8.3f} {size / 1e6:8.2f} MB  {verdict}")
    # Baseline: the same page with the whole map sent (no sampling).
    original = data.clusters.MAP_LIMIT
    data.clusters.MAP_LIMIT = records + 10
    cold, warm, size = time_page(client, output, "/clusters", "", repeat)
    data.clusters.MAP_LIMIT = original
    print(
        f"[{name}] {'baseline: clusters, map unsampled':38} {cold:8.3f} {warm:8.3f} "
        f"{size / 1e6:8.2f} MB"
    )
    if browser:
        got = browser_times(
            app, [("/", "#chart-calls .main-svg"), ("/clusters", "#cluster-map .main-svg")]
        )
        for path, seconds in got.items():
            print(f"[{name}] chromium {path:29} {seconds:9.3f}            (navigation → drawn)")
    app.server.config["LLMSCOPE_ENGINE"].dispose()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres-url", help="also benchmark a fresh database on this server")
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bench_store(
            "sqlite", f"sqlite:///{Path(tmp) / 'store.db'}", args.records, args.repeat, args.browser
        )
    if args.postgres_url:
        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        name = f"llmscope_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = (
                make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
            )
            bench_store("postgresql", url, args.records, args.repeat, args.browser)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
