"""Bounded runs: the per-window sample, its unbiased shares, and a bounded run end to end
(a sample clustered, every record counted)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.job import run_analysis
from llmscope.analysis.sampling import budget, sample_windows
from llmscope.analysis.timings import STAGES
from llmscope.analysis.windows import parse_interval
from llmscope.config import Settings
from llmscope.db.models import AnalysisRun, RunAssignment
from llmscope.db.queries import newest_thumbs
from tests.analysis.test_job import model  # noqa: F401  (the session's loaded model)
from tests.analysis.traffic import BASELINE, CURRENT, seed_traffic


def test_budget_gives_each_window_half_and_the_unused_part_to_the_other() -> None:
    assert budget(100, 100, 50) == (25, 25)
    assert budget(1000, 10, 50) == (40, 10)
    assert budget(10, 1000, 50) == (10, 40)
    assert budget(30, 20, 50) == (30, 20)  # under the bound: everything
    assert budget(0, 0, 50) == (0, 0)


def test_sample_is_seeded_sorted_and_within_the_bound() -> None:
    is_current = np.array([False] * 700 + [True] * 300)
    a = sample_windows(is_current, 200, seed=3)
    assert a.sampled and len(a.keep) == 200
    assert (a.baseline_kept, a.current_kept) == (100, 100)
    assert int(is_current[a.keep].sum()) == 100 and np.all(np.diff(a.keep) > 0)
    assert np.array_equal(a.keep, sample_windows(is_current, 200, seed=3).keep)
    assert not np.array_equal(a.keep, sample_windows(is_current, 200, seed=4).keep)
    everything = sample_windows(is_current, 5000, seed=3)
    assert not everything.sampled and np.array_equal(everything.keep, np.arange(1000))


def test_sampled_shares_are_unbiased() -> None:
    # Two windows with known shares of 3 clusters; the mean sampled share over many seeds
    # is the true share (a biased sampler, e.g. the first records, would be far off).
    rng = np.random.default_rng(0)
    base = rng.choice(3, size=6000, p=[0.6, 0.3, 0.1])
    cur = np.sort(rng.choice(3, size=2000, p=[0.2, 0.3, 0.5]))  # sorted: order must not matter
    labels = np.concatenate([base, cur])
    is_current = np.array([False] * 6000 + [True] * 2000)
    shares = []
    for seed in range(200):
        keep = sample_windows(is_current, 400, seed).keep
        kept_cur = labels[keep][is_current[keep]]
        shares.append(np.bincount(kept_cur, minlength=3) / len(kept_cur))
    truth = np.bincount(cur, minlength=3) / len(cur)
    assert np.abs(np.mean(shares, axis=0) - truth).max() < 0.01


def test_a_run_above_the_bound_clusters_a_sample_and_counts_every_record_and_rating(
    settings: Settings,
    engine: Engine,
    model: None,  # noqa: F811
) -> None:
    seed_traffic(engine, per_window=150)
    bounded = settings.model_copy(update={"analysis_max_records": 120})
    report = run_analysis(
        bounded, parse_interval(BASELINE), parse_interval(CURRENT), progress=False
    ).to_json()
    # ``sample`` says what was clustered; everything else counts all 300 records.
    assert report["sample"] == {"max_records": 120, "analysed": 120}
    assert report["baseline"]["records"] == 150 and report["current"]["records"] == 150
    cut = [c for c in report["clusters"] if c.get("parent") is None]
    # Exact totals, where scaling a 60-record sample by 150/60 gave e.g. 151.
    assert sum(c["baseline_count"] for c in cut) == 150
    assert sum(c["current_count"] for c in cut) == 150
    assert sum(c["current_share"] for c in cut) == pytest.approx(1.0)
    for cluster in report["clusters"]:
        assert cluster["size"] == cluster["baseline_count"] + cluster["current_count"]
    with Session(engine) as session:
        assigned = session.execute(
            select(RunAssignment.record_id, RunAssignment.cluster_id, RunAssignment.window).where(
                RunAssignment.run_id == report["run_id"]
            )
        ).all()
        ids = [r.record_id for r in assigned if r.window == "current"]
        thumbs = newest_thumbs(session, ids)
        params = session.get(AnalysisRun, report["run_id"]).params  # type: ignore[union-attr]
    # Every record has a cluster of the cut, and the cluster's counts are its records.
    assert len(assigned) == 300 and sum(r.window == "current" for r in assigned) == 150
    assert {r.cluster_id for r in assigned} == {c["id"] for c in cut}
    for cluster in cut:
        mine = [r for r in assigned if r.cluster_id == cluster["id"]]
        assert cluster["current_count"] == sum(r.window == "current" for r in mine)
    # Every rating of the current window is counted: 150 rated, the true thumbs-down total.
    rated = [t for t in thumbs.values() if t is not None]
    assert len(rated) == 150
    assert sum(c["feedback"]["rated"] for c in cut) == 150
    assert sum(c["feedback"]["down"] for c in cut) == sum(rated)
    assert params["analysis_max_records"] == 120 and params["embedding_backend"] == "torch"
    assert set(params["timings"]) == set(STAGES)
    assert all(v >= 0 for v in params["timings"].values()) and params["timings"]["embed_s"] > 0

    # Within the bound: no sample key, counts are the records themselves.
    whole = run_analysis(
        settings, parse_interval(BASELINE), parse_interval(CURRENT), progress=False
    ).to_json()
    assert "sample" not in whole
    assert sum(c["size"] for c in whole["clusters"] if c.get("parent") is None) == 300
