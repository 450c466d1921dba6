"""Cluster identity across runs: each run's clusters inherit a stable key from the previous run.

Cluster ids are just positions in one run's clustering; re-clustering renumbers them. To say
"this is the same cluster as yesterday" (for alert cooldowns, summaries, the dashboard's
history), each cluster of a run is matched to the clusters of the previous run by the cosine
similarity of their embedding centroids. The matching is one-to-one and maximises the total
similarity (the Hungarian method), and a pair only counts when its similarity reaches
``Settings.cluster_match_threshold`` (default 0.85: clusters of the same topic drawn from
overlapping data have centroid similarities well above 0.9 with MiniLM embeddings, while
neighbouring but different intents sit around 0.6-0.8). A matched cluster keeps the earlier
cluster's ``stable_key``; an unmatched one gets a new key.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.db.models import AnalysisRun, RunCluster
from llmscope.db.queries import NEWEST_RUN_FIRST

__all__ = ["DEFAULT_THRESHOLD", "Match", "match_centroids", "match_clusters", "new_stable_key"]

log = logging.getLogger("llmscope.analysis.matching")

DEFAULT_THRESHOLD = 0.85


@dataclass(frozen=True)
class Match:
    """Cluster ``current`` (a row index) is the same as earlier cluster ``previous``."""

    current: int
    previous: int
    similarity: float


def new_stable_key() -> str:
    return f"c-{uuid.uuid4().hex[:16]}"


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero centroid matches nothing rather than dividing by zero.
    unit: np.ndarray = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def match_centroids(
    current: np.ndarray, previous: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> list[Match]:
    """One-to-one matches of ``current`` rows to ``previous`` rows with cosine >= threshold."""
    if current.size == 0 or previous.size == 0:
        return []
    if current.shape[1] != previous.shape[1]:
        # A different embedding model: nothing is comparable.
        return []
    similarity = _unit_rows(current.astype(np.float64)) @ _unit_rows(previous.astype(np.float64)).T
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    matches = [
        Match(int(r), int(c), float(similarity[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if similarity[r, c] >= threshold
    ]
    return sorted(matches, key=lambda m: m.current)


def _centroid(cluster: RunCluster) -> np.ndarray | None:
    if not cluster.centroid:
        return None
    return np.frombuffer(cluster.centroid, dtype="<f4")


def _previous_run_clusters(session: Session, run: AnalysisRun) -> list[RunCluster]:
    """Clusters of the newest earlier run that has keyed clusters with centroids."""
    earlier = session.scalars(
        select(AnalysisRun.id)
        .where(AnalysisRun.id != run.id, AnalysisRun.created_at <= run.created_at)
        .order_by(*NEWEST_RUN_FIRST)
        .limit(20)
    ).all()
    for run_id in earlier:
        clusters = session.scalars(
            select(RunCluster).where(
                RunCluster.run_id == run_id,
                RunCluster.cluster_id >= 0,
                RunCluster.stable_key.is_not(None),
                RunCluster.centroid.is_not(None),
            )
        ).all()
        if clusters:
            return list(clusters)
    return []


def match_clusters(session: Session, run_id: str, threshold: float = DEFAULT_THRESHOLD) -> int:
    """Set ``stable_key`` on every cluster of ``run_id``; returns how many matched earlier ones.

    The caller commits. Clusters without a centroid always get a new key.
    """
    run = session.get(AnalysisRun, run_id)
    if run is None:
        raise LookupError(f"no analysis run {run_id!r}")
    clusters = list(
        session.scalars(
            select(RunCluster)
            .where(RunCluster.run_id == run_id, RunCluster.cluster_id >= 0)
            .order_by(RunCluster.cluster_id)
        ).all()
    )
    previous = _previous_run_clusters(session, run)
    with_centroid = [(c, v) for c in clusters if (v := _centroid(c)) is not None]
    prev_with_centroid = [(p, v) for p in previous if (v := _centroid(p)) is not None]

    keys: dict[int, str] = {}
    if with_centroid and prev_with_centroid:
        dims = {v.shape[0] for _, v in with_centroid} | {v.shape[0] for _, v in prev_with_centroid}
        if len(dims) == 1:
            current_matrix = np.stack([v for _, v in with_centroid])
            previous_matrix = np.stack([v for _, v in prev_with_centroid])
            for match in match_centroids(current_matrix, previous_matrix, threshold):
                cluster = with_centroid[match.current][0]
                keys[cluster.cluster_id] = str(prev_with_centroid[match.previous][0].stable_key)
    for cluster in clusters:
        cluster.stable_key = keys.get(cluster.cluster_id) or new_stable_key()
    session.flush()
    log.info(
        "clusters matched run=%s clusters=%d matched=%d previous=%d",
        run_id,
        len(clusters),
        len(keys),
        len(previous),
    )
    return len(keys)
