"""The analysis pipeline on arrays: reduce, cluster, describe, test. No store in here.

``cluster_embeddings`` is the default clustering pipeline (what the Banking77 benchmark
measures); ``analyse`` runs everything a report needs over the records of both windows,
clustered together so that clusters are comparable across windows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmscope.analysis import stats
from llmscope.analysis.cluster import Clustering, cluster
from llmscope.analysis.keywords import ctfidf_keywords, representatives
from llmscope.analysis.reduce import Reduction, reduce
from llmscope.config import Settings


def cluster_embeddings(embeddings: np.ndarray, settings: Settings) -> tuple[Reduction, Clustering]:
    """The default pipeline: seeded UMAP (cosine) then automatic clustering."""
    reduction = reduce(
        embeddings,
        dims=settings.reduce_dims,
        neighbors=settings.reduce_neighbors,
        sample=settings.reduce_sample,
        seed=settings.analysis_seed,
    )
    clustering = cluster(
        reduction.reduced,
        max_clusters=settings.cluster_max,
        min_size=settings.cluster_min_size,
        seed=settings.analysis_seed,
    )
    return reduction, clustering


@dataclass
class ClusterResult:
    id: int
    members: np.ndarray  # record indices
    baseline_count: int
    current_count: int
    keywords: list[str]
    examples: list[int]  # record indices, nearest the centroid first
    centroid: np.ndarray
    drift: stats.ShareChange | None = None
    hotspot: stats.Hotspot | None = None


@dataclass
class RunResult:
    labels: np.ndarray  # per record
    layout: np.ndarray  # per record, (n, 2)
    clusters: list[ClusterResult]
    global_drift: stats.TwoSampleResult
    baseline_records: int
    current_records: int
    versions: list[dict[str, Any]] = field(default_factory=list)


def analyse(
    records: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
    embeddings: np.ndarray,
    text_index: np.ndarray,
    is_current: np.ndarray,
    down: Sequence[bool | None],
    settings: Settings,
) -> RunResult:
    """Everything a run computes.

    ``embeddings`` has one row per distinct text (``texts``); ``text_index[i]`` is record i's
    row. ``down[i]`` is record i's latest thumb: True (down), False (up) or None (unrated).
    """
    reduction, clustering = cluster_embeddings(embeddings, settings)
    labels = clustering.labels[text_index] if len(text_index) else np.zeros(0, dtype=np.int64)
    words = ctfidf_keywords(texts, clustering.labels)
    centroids, nearest = representatives(embeddings, clustering.labels)

    # A representative text stands for its newest record (records arrive oldest first).
    record_of_text = {int(t): i for i, t in enumerate(text_index)}
    n_base = int((~is_current).sum())
    n_cur = int(is_current.sum())
    clusters = []
    for c in range(clustering.n_clusters):
        members = np.flatnonzero(labels == c)
        clusters.append(
            ClusterResult(
                id=c,
                members=members,
                baseline_count=int((~is_current[members]).sum()),
                current_count=int(is_current[members].sum()),
                keywords=words.get(c, []),
                examples=[record_of_text[t] for t in nearest.get(c, [])],
                centroid=centroids[c],
            )
        )

    verdicts = window_tests(
        labels, len(clusters), embeddings[text_index], is_current, down, settings
    )
    for found, change, spot in zip(clusters, verdicts.drift, verdicts.hotspots, strict=True):
        found.drift, found.hotspot = change, spot
    return RunResult(
        labels=labels,
        layout=reduction.layout[text_index],
        clusters=clusters,
        global_drift=verdicts.global_drift,
        baseline_records=n_base,
        current_records=n_cur,
        versions=template_versions(records, down),
    )


@dataclass
class Verdicts:
    """Every test of a run that can raise a flag (and so an alert)."""

    drift: list[stats.ShareChange]  # per cluster
    hotspots: list[stats.Hotspot]  # per cluster
    global_drift: stats.TwoSampleResult

    @property
    def flagged(self) -> bool:
        """Does the report carry any flag at all (what a false alarm is, under the null)."""
        return (
            self.global_drift.flagged
            or any(d.flagged for d in self.drift)
            or any(h.flagged for h in self.hotspots)
        )


def window_tests(
    labels: np.ndarray,
    n_clusters: int,
    vectors: np.ndarray,
    is_current: np.ndarray,
    down: Sequence[bool | None],
    settings: Settings,
) -> Verdicts:
    """The flagging statistics of a run, given each record's cluster, window and thumb.

    ``labels[i]`` is record i's cluster (``-1``: none), ``vectors[i]`` its embedding. The run's
    ``LLMSCOPE_DRIFT_ALPHA`` is split over the families (``stats.split_alpha``), so two windows
    from one distribution (and thumbs-down independent of the cluster) raise any flag with
    probability at most alpha. Only current-window thumbs count for hotspots.
    """
    levels = stats.split_alpha(settings.drift_alpha)
    in_cluster = labels >= 0
    bins = np.where(in_cluster, labels, 0)

    def per_cluster(mask: np.ndarray) -> list[int]:
        counts = np.bincount(bins[mask & in_cluster], minlength=n_clusters)
        return [int(v) for v in counts[:n_clusters]]

    changes = stats.share_changes(
        per_cluster(~is_current),
        per_cluster(is_current),
        baseline_total=int((~is_current).sum()),
        current_total=int(is_current.sum()),
        fdr=levels.cluster_drift,
        min_ratio=settings.drift_min_ratio,
        min_share_change=settings.drift_min_share_change,
    )
    rated = np.array([d is not None for d in down], dtype=bool) & is_current
    is_down = np.array([bool(d) for d in down], dtype=bool)
    spots = stats.hotspots(
        per_cluster(rated),
        per_cluster(rated & is_down),
        fdr=levels.hotspots,
        min_rated=settings.hotspot_min_rated,
        min_lift=settings.hotspot_min_lift,
    )
    global_drift = stats.mmd_two_sample(
        vectors[~is_current],
        vectors[is_current],
        alpha=levels.global_drift,
        seed=settings.analysis_seed,
    )
    return Verdicts(changes, spots, global_drift)


def template_versions(
    records: Sequence[Mapping[str, Any]], down: Sequence[bool | None]
) -> list[dict[str, Any]]:
    """Per template with several versions: each version against the previous one (A/B)."""
    by_template: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(records):  # records are in time order: versions in first-seen order
        if r.get("template_name"):
            versions = by_template.setdefault(r["template_name"], {})
            versions.setdefault(str(r.get("template_version") or ""), []).append(i)
    rows: list[dict[str, Any]] = []
    for name, versions in sorted(by_template.items()):
        if len(versions) < 2:
            continue
        samples = []
        for version, idx in versions.items():
            thumbs = [bool(d) for d in (down[i] for i in idx) if d is not None]
            latencies = [
                float(records[i]["latency_ms"])
                for i in idx
                if records[i].get("latency_ms") is not None
            ]
            samples.append(
                stats.VersionSample(version, len(idx), len(thumbs), sum(thumbs), latencies)
            )
        counts = Counter({s.version: s.records for s in samples})
        for comparison in stats.compare_versions(samples):
            row = {"template": name, **comparison.__dict__}
            row["records"], row["against_records"] = (
                counts[comparison.version],
                counts[comparison.against],
            )
            rows.append(row)
    return rows
