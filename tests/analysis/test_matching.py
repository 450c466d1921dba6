"""Cluster matching across runs on hand-made centroids whose right matches are known."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.matching import match_centroids, match_clusters
from llmscope.db.models import RunCluster
from tests.analysis.seeding import NOW, ClusterSeed, seed_run, unit


def test_match_centroids_is_one_to_one_and_respects_the_threshold() -> None:
    previous = np.array([unit(1, 0), unit(0, 1), unit(0, 0, 1)])
    current = np.array(
        [
            unit(0.1, 1),  # ~ previous 1 (cos 0.995)
            unit(1, 0.05),  # ~ previous 0
            unit(1, 0.2),  # also near previous 0, but 0 is taken by a better match
            unit(0, 0, 1, 1),  # cos 0.707 with previous 2: below 0.85
        ]
    )
    matches = match_centroids(current, previous, threshold=0.85)
    assert [(m.current, m.previous) for m in matches] == [(0, 1), (1, 0)]
    assert matches[0].similarity == pytest.approx(1 / np.sqrt(1.01), abs=1e-9)
    # The threshold is inclusive and decides alone: 0.7 admits the 0.707 pair.
    loose = match_centroids(current, previous, threshold=0.7)
    assert (3, 2) in [(m.current, m.previous) for m in loose]


def test_match_centroids_handles_empty_and_mismatched_inputs() -> None:
    assert match_centroids(np.zeros((0, 8)), np.array([unit(1)])) == []
    assert match_centroids(np.array([unit(1)]), np.array([unit(1, dim=4)])) == []
    # A zero centroid matches nothing instead of dividing by zero.
    assert match_centroids(np.zeros((1, 8)), np.array([unit(1)])) == []


def seeds(*centroids: list[float]) -> list[ClusterSeed]:
    return [
        ClusterSeed(id=i, centroid=c, current=[(f"question {i}", "answer")])
        for i, c in enumerate(centroids)
    ]


def keys(engine: Engine, run_id: str) -> dict[int, str]:
    with Session(engine) as session:
        rows = session.scalars(select(RunCluster).where(RunCluster.run_id == run_id)).all()
        return {r.cluster_id: str(r.stable_key) for r in rows}


def match(engine: Engine, run_id: str) -> int:
    with Session(engine) as session:
        matched = match_clusters(session, run_id)
        session.commit()
    return matched


def test_stable_keys_survive_renumbering(engine: Engine) -> None:
    first = seed_run(engine, seeds(unit(1, 0), unit(0, 1), unit(0, 0, 1)), run_id="r1")
    assert match(engine, first) == 0
    k1 = keys(engine, first)
    assert len(set(k1.values())) == 3 and all(k.startswith("c-") for k in k1.values())

    # Re-clustered: ids shuffled, one topic gone, one topic new.
    second = seed_run(
        engine,
        seeds(unit(0.05, 1), unit(0, 0, 0, 1), unit(1, 0.1)),
        run_id="r2",
        created_at=NOW.replace(hour=13),
    )
    assert match(engine, second) == 2
    k2 = keys(engine, second)
    assert k2[0] == k1[1]
    assert k2[2] == k1[0]
    assert k2[1] not in k1.values()

    # The next run matches against r2 (the newest earlier run), so the new key carries on.
    third = seed_run(engine, seeds(unit(0, 0, 0, 1)), run_id="r3", created_at=NOW.replace(hour=14))
    assert match(engine, third) == 1
    assert keys(engine, third)[0] == k2[1]
