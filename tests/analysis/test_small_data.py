"""Small data said plainly: empty windows make no run, small ones say what was not tested."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.cli import report_summary
from llmscope.analysis.embedding import cached_vectors, load_model, text_hash
from llmscope.analysis.job import run_analysis
from llmscope.analysis.reduce_small import reduce_small
from llmscope.analysis.small_data import MIN_TESTED_RECORDS, EmptyWindows, run_warnings
from llmscope.analysis.windows import parse_interval
from llmscope.app.cli import main
from llmscope.app.worker import Worker
from llmscope.config import Settings
from llmscope.db.models import AnalysisRun, Record
from tests.analysis.traffic import BASELINE, CURRENT, NOW, _record, question
from tests.conftest import count_rows

WINDOWS = (parse_interval(BASELINE), parse_interval(CURRENT))


@pytest.fixture(scope="module")
def model() -> None:
    load_model("all-MiniLM-L6-v2")


def seed(engine: Engine, baseline: int, current: int, topics: tuple[str, ...]) -> None:
    """``baseline`` and ``current`` records over ``topics`` (round robin), seeded."""
    rng = random.Random(3)
    rows = []
    for i in range(baseline):
        topic = topics[i % len(topics)]
        moment = NOW - timedelta(days=2, hours=rng.uniform(0, 100))
        rows.append(_record(f"{topic}-b{i}", moment, question(rng, topic), "1"))
    for i in range(current):
        topic = topics[i % len(topics)]
        moment = NOW - timedelta(hours=rng.uniform(0.1, 23))
        rows.append(_record(f"{topic}-c{i}", moment, question(rng, topic), "1"))
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()


def test_empty_windows_make_no_run(settings: Settings, engine: Engine) -> None:
    # A record outside both windows does not count.
    with Session(engine) as session:
        session.add(_record("old", NOW - timedelta(days=30), "how do I reset my password?", "1"))
        session.commit()
    with pytest.raises(EmptyWindows, match="nothing to analyse.*no records"):
        run_analysis(settings, *WINDOWS, progress=False)
    assert count_rows(engine, AnalysisRun) == 0


def test_analyze_on_an_empty_store_exits_1_with_one_line(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["analyze", "--baseline", BASELINE, "--current", CURRENT,
         "--database-url", settings.database_url]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    problem = [line for line in err.splitlines() if "store:" not in line]
    assert len(problem) == 1 and "nothing to analyse" in problem[0]
    assert "2026-11-12T12:00:00Z → 2026-11-19T12:00:00Z" in problem[0]
    assert count_rows(engine, AnalysisRun) == 0


def test_the_worker_skips_a_turn_over_empty_windows(settings: Settings, engine: Engine) -> None:
    worker = Worker(settings, analyze_every=3600, embed_every=60)
    try:
        assert worker.analysis_turn() == "skipped"
    finally:
        worker.engine.dispose()
    assert count_rows(engine, AnalysisRun) == 0


def test_an_empty_baseline_is_not_tested_and_says_so(
    settings: Settings, engine: Engine, model: None
) -> None:
    seed(engine, 0, 40, ("password", "refund"))
    report = run_analysis(settings, *WINDOWS, progress=False)
    data = report.to_json()
    assert data["warnings"][0] == (
        "the baseline window 2026-11-12T12:00:00Z → 2026-11-19T12:00:00Z has 0 records: "
        "drift was not tested"
    )
    assert data["clusters"], "the records are clustered"
    for cluster in data["clusters"]:
        assert cluster["drift"] == {
            "kind": "not tested", "score": None, "p_value": None, "q_value": None,
            "flagged": False,
        }  # fmt: skip
    assert data["global_drift"]["method"] == "not tested"
    assert data["global_drift"]["p_value"] is None
    assert not [f for f in data["findings"] if f["kind"] in {"drift", "new_cluster"}]
    assert data["alerts"] == []
    with Session(engine) as session:
        stored = session.scalars(select(AnalysisRun.report)).one()
    assert stored["warnings"] == data["warnings"]
    story = report_summary(report)
    assert "global drift: not tested" in story
    assert f"warning: {data['warnings'][0]}" in story


def test_a_small_baseline_is_not_tested_and_says_how_small(
    settings: Settings, engine: Engine, model: None
) -> None:
    seed(engine, 3, 40, ("password", "refund"))
    data = run_analysis(settings, *WINDOWS, progress=False).to_json()
    assert data["warnings"][0].endswith(
        f"has 3 records (fewer than {MIN_TESTED_RECORDS}): drift was not tested"
    )
    assert {c["drift"]["kind"] for c in data["clusters"]} == {"not tested"}


def test_enough_records_carry_no_warnings(settings: Settings, engine: Engine, model: None) -> None:
    seed(engine, 30, 30, ("password", "refund", "shipping"))
    data = run_analysis(settings, *WINDOWS, progress=False).to_json()
    assert "warnings" not in data
    assert "not tested" not in {c["drift"]["kind"] for c in data["clusters"]}
    assert data["global_drift"]["p_value"] is not None


def test_too_few_records_to_split_make_one_cluster_and_say_so() -> None:
    baseline, current = WINDOWS
    said = run_warnings(baseline, current, 12, 12, distinct_texts=15, min_size=10)
    assert said == [
        "only 15 distinct texts: too few to split into clusters of at least 10 "
        "(LLMSCOPE_CLUSTER_MIN_SIZE), so every record is in one cluster"
    ]
    assert run_warnings(baseline, current, 12, 12, distinct_texts=20, min_size=10) == []


def test_reduce_small_is_pca() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 384)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    reduction = reduce_small(points)
    assert reduction.reduced.shape == (60, 10) and reduction.layout.shape == (60, 2)
    # The components are the centred data's projections, in order of variance.
    centred = points - points.mean(axis=0)
    variance = reduction.reduced.var(axis=0)
    assert np.all(np.diff(variance) <= 1e-6)
    assert variance.sum() == pytest.approx(
        np.linalg.svd(centred, compute_uv=False)[:10].__pow__(2).sum() / 60, rel=1e-4
    )
    np.testing.assert_array_equal(reduction.layout, reduction.reduced[:, :2])
    few = reduce_small(points[:4])
    assert few.reduced.shape == (4, 10) and np.all(few.reduced[:, 4:] == 0)


def test_a_small_run_loads_neither_umap_nor_torch(tmp_path: Path, model: None) -> None:
    """A cold run over a few dozen records with PCA switched on embeds them in numpy and reduces
    them with PCA: it imports no UMAP, torch or sentence-transformers, and caches the
    reference's vectors."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    from llmscope.db import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    seed(engine, 30, 30, ("password", "refund", "shipping"))
    engine.dispose()
    script = (
        "import sys, json\n"
        "from llmscope.analysis.job import run_analysis\n"
        "from llmscope.analysis.windows import parse_interval\n"
        "from llmscope.config import Settings\n"
        f"s = Settings(database_url={url!r}, data_dir={str(tmp_path / 'data')!r},"
        " reduce_small_max=500)\n"
        f"r = run_analysis(s, parse_interval({BASELINE!r}), parse_interval({CURRENT!r}),"
        " progress=False)\n"
        "print(json.dumps([len(r.clusters), sorted(m for m in ('umap', 'torch',"
        " 'sentence_transformers') if m in sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    clusters, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert clusters >= 2 and loaded == []
    engine = make_engine(url)
    with Session(engine) as session:
        texts = sorted({r.prompt for r in session.scalars(select(Record))})
        cached = cached_vectors(session, "all-MiniLM-L6-v2", [text_hash(t) for t in texts])
    engine.dispose()
    reference = load_model("all-MiniLM-L6-v2").encode(texts, normalize_embeddings=True)
    stored = np.vstack([cached[text_hash(t)] for t in texts])
    assert np.abs(stored - reference).max() <= 1e-5


def test_records_older_than_the_windows_do_not_count(settings: Settings, engine: Engine) -> None:
    with Session(engine) as session:
        session.add(
            Record(id="x", timestamp=NOW - timedelta(days=9), prompt="hello", response="hi")
        )
        session.commit()
    with pytest.raises(EmptyWindows):
        run_analysis(settings, *WINDOWS, progress=False)
