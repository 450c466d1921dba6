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
from llmscope.analysis.assign import assign_rest
from llmscope.analysis.cluster import Clustering, cluster
from llmscope.analysis.evaluations import (
    evaluation_tests,
    hotspot_levels,
    template_fail_rates,
)
from llmscope.analysis.hotspot_tests import HotspotVerdict
from llmscope.analysis.implicit import RephraseVerdict, Turns, turns_of_records
from llmscope.analysis.keywords import ctfidf_keywords, representatives
from llmscope.analysis.reduce import Reduction, reduce
from llmscope.analysis.regressions import CallMetrics, RegressionResult
from llmscope.analysis.routes import route_destinations
from llmscope.analysis.session_outcomes import SessionEnds, session_ends
from llmscope.analysis.timings import stage
from llmscope.analysis.tree import build_tree
from llmscope.analysis.verdicts import Verdicts, window_tests
from llmscope.config import Settings

__all__ = [
    "ClusterResult",
    "RunResult",
    "Verdicts",
    "analyse",
    "cluster_embeddings",
    "window_tests",
]


def cluster_embeddings(embeddings: np.ndarray, settings: Settings) -> tuple[Reduction, Clustering]:
    """The default pipeline: seeded UMAP (cosine) then automatic clustering; at or below
    ``LLMSCOPE_REDUCE_SMALL_MAX`` texts, PCA instead of UMAP (``reduce_small.py``)."""
    with stage("reduce_s"):
        if len(embeddings) <= settings.reduce_small_max:
            from llmscope.analysis.reduce_small import reduce_small

            reduction = reduce_small(embeddings)
        else:
            reduction = reduce(
                embeddings,
                dims=settings.reduce_dims,
                neighbors=settings.reduce_neighbors,
                sample=settings.reduce_sample,
                seed=settings.analysis_seed,
            )
    with stage("cluster_s"):
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
    hotspot: HotspotVerdict | None = None
    parent: int | None = None  # a sub-cluster's parent (a cluster or a sub-cluster); else None
    evaluations: dict[str, stats.Hotspot] = field(default_factory=dict)  # per evaluator
    regressions: dict[str, RegressionResult] = field(default_factory=dict)  # clusters of the cut
    rephrase: RephraseVerdict | None = None  # clusters of the cut, in a run with conversations


@dataclass
class NovelGroup:
    """Records far from every cluster centroid (a new topic too small for a cluster yet)."""

    members: np.ndarray  # record indices
    baseline_count: int
    current_count: int
    threshold: float  # cosine similarity to the nearest centroid below which a text is novel
    examples: list[int]  # record indices, the least similar first
    drift: stats.ShareChange | None


@dataclass
class RunResult:
    labels: np.ndarray  # per record
    layout: np.ndarray  # per record, (n, 2)
    clusters: list[ClusterResult]
    global_drift: stats.TwoSampleResult
    baseline_records: int
    current_records: int
    versions: list[dict[str, Any]] = field(default_factory=list)
    novel: NovelGroup | None = None
    # Per record: the most specific flagged sub-cluster holding it, -1 when none.
    subcluster: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    evaluators: dict[str, dict[str, Any]] = field(default_factory=dict)  # report-level summary
    routes: list[dict[str, Any]] = field(default_factory=list)  # traffic-split destinations
    turns: Turns | None = None  # per record: rephrased, regenerated (None: prompts not embedded)
    sessions: SessionEnds | None = None  # per record: the last turns of sessions, how they ended


def analyse(
    records: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
    embeddings: np.ndarray,
    text_index: np.ndarray,
    is_current: np.ndarray,
    down: Sequence[bool | None],
    settings: Settings,
    evaluations: Mapping[str, Sequence[bool | None]] | None = None,
    clustered: np.ndarray | None = None,
) -> RunResult:
    """Everything a run computes.

    ``embeddings`` has one row per distinct text (``texts``); ``text_index[i]`` is record i's
    row. ``down[i]`` is record i's latest thumb: True (down), False (up) or None (unrated).
    ``evaluations[name][i]`` is record i's verdict by evaluator ``name`` (True pass, False
    fail, None not evaluated): its failure hotspots join the thumbs-down hotspots' family.
    ``clustered[i]`` (a bounded run) marks the records whose texts are clustered; every other
    text is assigned to a cluster from its nearest clustered texts (``assign.py``), and every
    count and test covers all records. None: every text is clustered.
    """
    if clustered is None:
        reduction, clustering = cluster_embeddings(embeddings, settings)
    else:
        chosen = np.unique(text_index[clustered])
        reduction, clustering = cluster_embeddings(embeddings[chosen], settings)
        with stage("cluster_s"):
            reduction, clustering = assign_rest(embeddings, chosen, reduction, clustering)
    labels = clustering.labels[text_index] if len(text_index) else np.zeros(0, dtype=np.int64)
    memo: dict[Any, Counter[str]] = {}  # class documents' term counts, shared with sub-clusters
    words = ctfidf_keywords(texts, clustering.labels, memo=memo)
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

    similarity = nearest_similarity(embeddings, centroids)
    novel_text = similarity < settings.novel_max_similarity
    novel = novel_text[text_index] if len(text_index) else np.zeros(0, dtype=bool)
    tree = build_tree(clustering) if settings.tree_testing else None
    micro = (
        clustering.micro_labels[text_index]
        if tree is not None and clustering.micro_labels is not None
        else None
    )
    passed = dict(evaluations or {})
    # Rephrases are read from the prompts' embeddings; other texts' say nothing about them.
    turns = (
        turns_of_records(records, text_index, embeddings, settings, labels)
        if settings.embed_field == "prompt"
        else None
    )
    rephrased = turns.outcomes() if turns is not None else None
    thumbs_level, evals_level = hotspot_levels(
        settings.drift_alpha, bool(passed), implicit=turns is not None and turns.conversational
    )
    verdicts = window_tests(
        labels, len(clusters), embeddings[text_index], is_current, down, settings,
        tree=tree, micro=micro, novel=novel, hotspot_level=thumbs_level,
        calls=CallMetrics.from_records(records), rephrased=rephrased,
    )  # fmt: skip
    by_evaluator, evaluators = evaluation_tests(
        labels,
        len(clusters),
        is_current,
        passed,
        down,
        fdr=evals_level,
        min_rated=settings.hotspot_min_rated,
        min_lift=settings.hotspot_min_lift,
    )
    for found, change, spot, moved in zip(
        clusters, verdicts.drift, verdicts.hotspots, verdicts.regressions, strict=True
    ):
        found.drift, found.hotspot, found.regressions = change, spot, moved
        found.evaluations = {name: spots[found.id] for name, spots in by_evaluator.items()}
        found.rephrase = verdicts.rephrase[found.id] if verdicts.rephrase else None

    subcluster = np.full(len(labels), -1, dtype=np.int64)
    micro_of_text = clustering.micro_labels
    if (
        tree is not None
        and micro is not None
        and micro_of_text is not None
        and verdicts.subclusters
    ):
        id_of = {s.node: len(clusters) + i for i, s in enumerate(verdicts.subclusters)}
        sub_labels = np.full(len(texts), -1, dtype=np.int64)
        for s in verdicts.subclusters:
            text_members = np.isin(micro_of_text, tree.leaves[s.node])
            record_members = np.flatnonzero(np.isin(micro, tree.leaves[s.node]))
            sub_labels[:] = -1
            sub_labels[text_members] = 0
            centre, near = representatives(embeddings, sub_labels)
            clusters.append(
                ClusterResult(
                    id=id_of[s.node],
                    members=record_members,
                    baseline_count=int((~is_current[record_members]).sum()),
                    current_count=int(is_current[record_members].sum()),
                    keywords=_sub_keywords(texts, clustering.labels, text_members, memo),
                    examples=[record_of_text[t] for t in near.get(0, [])],
                    centroid=centre[0],
                    drift=s.drift,
                    hotspot=s.hotspot,
                    parent=s.cluster if s.parent_node is None else id_of[s.parent_node],
                )
            )
        # Deeper sub-clusters come later in the list; assign them last so they win.
        for s in sorted(verdicts.subclusters, key=lambda s: _depth(tree.parent, s.node)):
            subcluster[np.isin(micro, tree.leaves[s.node])] = id_of[s.node]

    novel_group = None
    if novel.any():
        members = np.flatnonzero(novel)
        order = members[np.argsort(similarity[text_index[members]], kind="stable")]
        seen: list[int] = []
        for i in order:  # one example per distinct text
            if all(text_index[i] != text_index[j] for j in seen):
                seen.append(int(i))
            if len(seen) == 5:
                break
        novel_group = NovelGroup(
            members=members,
            baseline_count=int((~is_current[members]).sum()),
            current_count=int(is_current[members].sum()),
            threshold=settings.novel_max_similarity,
            examples=seen,
            drift=verdicts.novel,
        )
    return RunResult(
        labels=labels,
        layout=reduction.layout[text_index],
        clusters=clusters,
        global_drift=verdicts.global_drift,
        baseline_records=n_base,
        current_records=n_cur,
        versions=_versions(records, down, passed),
        routes=route_destinations(records, labels, down, passed),
        novel=novel_group,
        subcluster=subcluster,
        evaluators=evaluators,
        turns=turns,
        sessions=session_ends(records, is_current, down, turns),
    )


def _versions(
    records: Sequence[Mapping[str, Any]],
    down: Sequence[bool | None],
    passed: Mapping[str, Sequence[bool | None]],
) -> list[dict[str, Any]]:
    """The template A/B rows, with each evaluator's fail rates when the run has evaluations."""
    rows = template_versions(records, down)
    if passed:
        template_of = [
            (str(r["template_name"]), str(r.get("template_version") or ""))
            if r.get("template_name")
            else None
            for r in records
        ]
        template_fail_rates(template_of, dict(passed), rows)
    return rows


def nearest_similarity(embeddings: np.ndarray, centroids: Mapping[int, np.ndarray]) -> np.ndarray:
    """Per text, the cosine similarity to its nearest cluster centroid (novel when below the
    threshold; window-blind, so the novel group's share test stays exact)."""
    if not centroids or not len(embeddings):
        return np.ones(len(embeddings))
    return np.asarray((embeddings @ np.vstack(list(centroids.values())).T).max(axis=1))


def _depth(parent: Mapping[int, int], node: int) -> int:
    depth = 0
    while node in parent:
        node, depth = parent[node], depth + 1
    return depth


def _sub_keywords(
    texts: Sequence[str],
    labels: np.ndarray,
    members: np.ndarray,
    memo: dict[Any, Counter[str]],
) -> list[str]:
    """A sub-cluster's keywords: c-TF-IDF with the sub-cluster as one more class (``memo``
    holds the other classes' counts, so only the split class is analysed again)."""
    relabelled = labels.copy()
    sub = int(labels.max()) + 1
    relabelled[members] = sub
    return ctfidf_keywords(texts, relabelled, memo=memo, only=sub).get(sub, [])


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
