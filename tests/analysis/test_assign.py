"""Assigning the records a bounded run did not cluster: the rule agrees with clustering
everything, every record of both windows gets a cluster, and the export lists them all."""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from llmscope.analysis.assign import assign_rest
from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import analyse, cluster_embeddings
from llmscope.app.cli import main
from llmscope.config import Settings
from tests.analysis.test_job import model  # noqa: F401  (the session's loaded model)
from tests.analysis.traffic import BASELINE, CURRENT, OPENINGS, TOPICS, seed_traffic


@pytest.fixture(scope="module")
def questions() -> tuple[list[str], np.ndarray, np.ndarray]:
    """The traffic's 120 distinct questions (4 topics), sorted, their real embeddings and
    their topics."""
    pairs = sorted({(o + q, t) for t, qs in TOPICS.items() for q in qs for o in OPENINGS})
    texts = [p[0] for p in pairs]
    topics = np.array([sorted(TOPICS).index(p[1]) for p in pairs])
    vectors = load_model("all-MiniLM-L6-v2").encode(texts, normalize_embeddings=True)
    return texts, np.asarray(vectors, dtype=np.float32), topics


def test_the_vote_agrees_with_clustering_everything(
    questions: tuple[list[str], np.ndarray, np.ndarray],
) -> None:
    # Cluster all texts, keep a seeded half as if only it had been clustered (with the labels
    # clustering everything gave it), assign the other half: the rule must give back what
    # clustering everything gave, and each text's micro-cluster must lie in its cluster.
    _, vectors, _ = questions
    settings = Settings()
    reduction, full = cluster_embeddings(vectors, settings)
    assert full.n_clusters >= 2 and full.micro_labels is not None
    rng = np.random.default_rng(0)
    kept = np.sort(rng.choice(len(vectors), len(vectors) // 2, replace=False))
    half = dataclasses.replace(full, labels=full.labels[kept], micro_labels=full.micro_labels[kept])
    half_reduction = dataclasses.replace(
        reduction, reduced=reduction.reduced[kept], layout=reduction.layout[kept]
    )
    placed, extended = assign_rest(vectors, kept, half_reduction, half)
    rest = np.setdiff1d(np.arange(len(vectors)), kept)
    assert np.array_equal(extended.labels[kept], full.labels[kept])
    agreement = float((extended.labels[rest] == full.labels[rest]).mean())
    assert agreement >= 0.95, agreement
    assert extended.micro_labels is not None and full.micro_cluster is not None
    owner = full.micro_cluster[extended.micro_labels[rest]]
    assert np.all((owner == extended.labels[rest]) | (owner == -1))
    # Map positions come from the neighbours: inside the fitted layout's bounding box.
    low, high = reduction.layout[kept].min(axis=0), reduction.layout[kept].max(axis=0)
    assert np.all(placed.layout[rest] >= low - 1e-4) and np.all(placed.layout[rest] <= high + 1e-4)


def test_a_sampled_analysis_gives_every_record_a_cluster(
    questions: tuple[list[str], np.ndarray, np.ndarray],
) -> None:
    # 600 records over the 120 texts; only 40 records (fewer texts) are clustered.
    texts, vectors, _ = questions
    rng = random.Random(3)
    text_index = np.array([rng.randrange(len(texts)) for _ in range(600)], dtype=np.int64)
    records = [{"id": f"r{i}", "window": "current" if i % 2 else "baseline"} for i in range(600)]
    is_current = np.arange(600) % 2 == 1
    clustered = np.zeros(600, dtype=bool)
    clustered[np.random.default_rng(1).choice(600, 40, replace=False)] = True
    down = [None] * 600
    settings = Settings(cluster_min_size=3)
    result = analyse(
        records, texts, vectors, text_index, is_current, down, settings, clustered=clustered
    )
    assert len(result.labels) == 600 and result.layout.shape == (600, 2)
    assert result.labels.min() >= 0
    cut = [c for c in result.clusters if c.parent is None]
    assert sum(len(c.members) for c in cut) == 600
    assert sum(c.current_count for c in cut) == 300 and result.current_records == 300
    # The clustered records keep the labels a clustering of their texts alone gives.
    alone = np.unique(text_index[clustered])
    _, clustering = cluster_embeddings(vectors[alone], settings)
    position = {t: i for i, t in enumerate(alone)}
    for i in np.flatnonzero(clustered):
        assert result.labels[i] == clustering.labels[position[text_index[i]]]
    # Records of one text share its cluster, whether they were clustered or not.
    for t in np.unique(text_index):
        assert len(set(result.labels[text_index == t].tolist())) == 1


@pytest.mark.slow
def test_the_export_of_a_bounded_run_lists_every_record(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    model: None,  # noqa: F811
) -> None:
    seed_traffic(engine, per_window=100)
    url = ["--database-url", settings.database_url]
    windows = ["--baseline", BASELINE, "--current", CURRENT]
    bounded = {"LLMSCOPE_ANALYSIS_MAX_RECORDS": "100"}
    with pytest.MonkeyPatch.context() as env:
        for key, value in bounded.items():
            env.setenv(key, value)
        assert main(["analyze", *windows, *url]) == 0
    out = tmp_path / "clusters.csv"
    assert main(["export", "clusters", "--format", "csv", "-o", str(out), *url]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200 and len({r["record_id"] for r in rows}) == 200
    assert sum(r["window"] == "current" for r in rows) == 100
    assert all(int(r["cluster_id"]) >= 0 for r in rows)
