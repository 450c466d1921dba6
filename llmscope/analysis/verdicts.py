"""Every test of a run that can raise a flag, and the one function that decides them all.

Five families share the run's ``LLMSCOPE_DRIFT_ALPHA`` (Bonferroni, ``stats.split_alpha``;
a run with no record in a conversation has no implicit family and the other four get alpha/4):

- **global drift**: one MMD permutation test on the embeddings (alpha/5);
- **drift**: each cluster's share of the two windows, the ``novel`` group's share, and the
  share of every Ward-tree node below each cluster (alpha/5, ``hierarchy.hierarchical_bh``);
- **hotspots**: for each cluster and each tree node below it, two thumbs-down tests in one
  family (alpha/5, the same procedure): *persistent* (its rate over every rated record of
  both windows against all others) and *emerging* (its rate in the current window against
  its own rate in the baseline);
- **regressions**: for each cluster, its median latency, median output length, mean cost per
  call and error rate, baseline calls against current calls (alpha/5, Benjamini-Hochberg over
  every cluster and metric; ``regressions.py``);
- **implicit**: for each cluster, the persistent and emerging tests of its rephrase rate
  (alpha/5, Benjamini-Hochberg over both kinds and every cluster; ``implicit.py``).

A cluster with too few ratings is tested, pooled with the other clusters that have too few,
at the lowest node above it in the tree where that pool has enough (its ``hotspot.level`` is
then ``parent``), rather than not at all. The pool leaves out the clusters tested on their
own, so a well-rated hot sibling cannot flag its sparsely rated neighbours; which clusters
pool depends on rating counts only, never on thumbs, so the test keeps its level.

Under the null of a false alarm (windows from one distribution, thumbs independent of topic
and window) each family flags anything with probability at most its level, so the report
flags anything with probability at most alpha; ``hierarchy.py`` gives the argument. For the
regressions the null is the same: a cluster's calls in the two windows draw their figures from
one distribution; for the implicit family, whether an answer is rephrased is independent of
its cluster and window. The thumbs-down tests of one group live in ``hotspot_tests.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmscope.analysis import stats
from llmscope.analysis.hierarchy import (
    Decision,
    Unit,
    hierarchical_bh,
    share_p_values,
)
from llmscope.analysis.hotspot_tests import (
    BASE,
    CUR,
    DOWN_C,
    RATED_C,
    UNTESTED,
    HotspotTests,
    HotspotVerdict,
    KindResult,
    count_rows,
    fisher_two_sided,
    group_sums,
    hotspot_verdict,
)
from llmscope.analysis.implicit import RephraseVerdict, rephrase_tests
from llmscope.analysis.regressions import CallMetrics, RegressionResult, regression_tests
from llmscope.analysis.tree import Tree
from llmscope.config import Settings


@dataclass(frozen=True)
class SubVerdict:
    """A tree node below the cut that a test flagged, reported as a sub-cluster."""

    node: int
    cluster: int  # the cluster (of the cut) it lies in
    parent_node: int | None  # the nearest reported node above it; None: the cluster itself
    drift: stats.ShareChange
    hotspot: HotspotVerdict


@dataclass
class Verdicts:
    """Every test of a run that can raise a flag (and so an alert)."""

    drift: list[stats.ShareChange]  # per cluster
    hotspots: list[HotspotVerdict]  # per cluster
    global_drift: stats.TwoSampleResult
    novel: stats.ShareChange | None = None  # the novel group (None: no novel records)
    subclusters: list[SubVerdict] = field(default_factory=list)
    # per cluster, per metric (empty: the run had no per-call figures to test)
    regressions: list[dict[str, RegressionResult]] = field(default_factory=list)
    # per cluster (empty: no record of the run is in a conversation)
    rephrase: list[RephraseVerdict] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """Does the report carry any flag at all (what a false alarm is, under the null)."""
        return (
            self.global_drift.flagged
            or any(d.flagged for d in self.drift)
            or any(h.flagged for h in self.hotspots)
            or bool(self.novel and self.novel.flagged)
            or any(s.drift.flagged or s.hotspot.flagged for s in self.subclusters)
            or any(r.flagged for metrics in self.regressions for r in metrics.values())
            or any(r.flagged for r in self.rephrase)
        )


@dataclass
class _Family:
    """Units of one family and which group each unit's own test and nodes belong to."""

    units: list[Unit] = field(default_factory=list)
    nodes: list[list[int]] = field(default_factory=list)  # tree nodes below, per unit
    key: list[object] = field(default_factory=list)  # what the unit's own test is about


def _most_specific(tree: Tree, top: int, flagged: dict[int, int], p: dict[int, float]) -> list[int]:
    """The flagged nodes under ``top`` a reader should see: the most specific explanation.

    Walking down from ``top``: an unflagged node is looked through; a flagged node stands for
    its effect unless exactly one child carries the same flag, the other child was tested
    (``p`` holds the tested nodes' p-values) and is calm, and the flagged child's evidence is at
    least as strong (p no larger); then the flag is that child's and the walk goes on in it. A
    hot intent merged with a calm neighbour is reported as itself, not as a fragment of itself.
    When ``top`` carries a flag, nodes below with the same flag are reported only if they
    explain it better; a node flagged the other way (a new intent growing inside a cluster
    that shrinks) is an effect of its own and is always reported.
    """

    def refine(node: int, sign: int) -> int:
        kids = tree.children.get(node)
        if not kids:
            return node
        a, b = kids
        for one, other in ((a, b), (b, a)):
            if (
                flagged.get(one) == sign
                and flagged.get(other) != sign
                and other in p
                and p[one] <= p.get(node, 1.0)
            ):
                return refine(one, sign)
        return node

    out: list[int] = []

    def find(node: int, explained: int | None) -> None:
        if node in flagged and flagged[node] != explained:
            out.append(refine(node, flagged[node]))
            return
        for child in tree.children.get(node, ()):
            find(child, explained)

    explained = flagged.get(top)
    if explained is not None:
        best = refine(top, explained)
        out += [] if best == top else [best]
    for child in tree.children.get(top, ()):
        find(child, explained)
    return out


KINDS = ("persistent", "emerging")


def _pooled(
    kind: str,
    spots: HotspotTests,
    per_cluster: np.ndarray,
    labels: np.ndarray,
    micro: np.ndarray | None,
    rows: np.ndarray,
    tree: Tree | None,
) -> dict[int, np.ndarray]:
    """Per tree node, the count rows of the records of the clusters under it that ``kind``
    cannot test on their own (too few ratings): what a parent-level test pools."""
    if tree is None or micro is None:
        return {}
    alone = [not spots.supported(per_cluster[c], kind) for c in range(len(per_cluster))]
    pooled = np.array(alone + [False])[labels.astype(np.int64)]  # label -1 reads the False
    return tree.sums(group_sums(micro.astype(np.int64), rows * pooled[:, None], tree.n_micro))


def window_tests(
    labels: np.ndarray,
    n_clusters: int,
    vectors: np.ndarray,
    is_current: np.ndarray,
    down: Sequence[bool | None],
    settings: Settings,
    *,
    tree: Tree | None = None,
    micro: np.ndarray | None = None,
    novel: np.ndarray | None = None,
    hotspot_level: float | None = None,
    calls: CallMetrics | None = None,
    rephrased: Sequence[bool | None] | None = None,
) -> Verdicts:
    """The flagging statistics of a run, given each record's cluster, window and thumb.

    ``labels[i]`` is record i's cluster (``-1``: none), ``vectors[i]`` its embedding. With
    ``tree`` and ``micro`` (record i's micro-cluster), the nodes below the cut are tested too;
    ``novel[i]`` marks the records far from every centroid. The run's alpha is split over the
    families so that two windows from one distribution (and thumbs-down independent of the
    cluster and the window) raise any flag with probability at most alpha. ``hotspot_level``
    (default: the hotspot family's whole share) is the thumbs' part of that share when the
    run's evaluator hotspots take the rest (``evaluations.hotspot_levels``). ``calls`` holds
    each record's latency, output tokens, cost and status for the regression tests;
    ``rephrased[i]`` whether record i's answer was rephrased (None: in no conversation;
    ``implicit.Turns.outcomes``) for the implicit family, open when any record has a value.
    """
    implicit = rephrased is not None and any(r is not None for r in rephrased)
    levels = stats.split_alpha(settings.drift_alpha, implicit=implicit)
    hot_level = levels.hotspots if hotspot_level is None else hotspot_level
    rows = count_rows(is_current, down)
    totals = rows.sum(axis=0) if len(rows) else np.zeros(6, dtype=np.int64)
    n_base, n_cur = int(totals[BASE]), int(totals[CUR])
    per_cluster = group_sums(labels.astype(np.int64), rows, n_clusters)
    per_node: dict[int, np.ndarray] = {}
    if tree is not None and micro is not None:
        per_node = tree.sums(group_sums(micro.astype(np.int64), rows, tree.n_micro))
    else:
        tree = None

    def below_of(c: int) -> list[int]:
        return tree.below(c) if tree is not None else []

    def above_of(c: int) -> list[int]:
        return tree.above(c) if tree is not None else []

    size = settings.cluster_min_size
    drift_kw = {
        "fdr": levels.cluster_drift,
        "min_ratio": settings.drift_min_ratio,
        "min_share_change": settings.drift_min_share_change,
    }

    # --- drift: clusters, novel group, nodes below ---------------------------------------
    fam = _Family()
    both_windows = n_base > 0 and n_cur > 0
    for c in range(n_clusters):
        b, cur = int(per_cluster[c, BASE]), int(per_cluster[c, CUR])
        own = fisher_two_sided(b, cur, n_base, n_cur) if both_windows else None
        below = [v for v in below_of(c) if per_node[v][:2].sum() >= size and both_windows]
        counts = np.array([per_node[v][:2] for v in below]).reshape(-1, 2)
        p_below = share_p_values(counts[:, 0], counts[:, 1], n_base, n_cur)
        fam.units.append(Unit(own, [float(p) for p in p_below]))
        fam.nodes.append(below)
        fam.key.append(c)
    novel_row = group_sums(np.where(novel, 0, -1), rows, 1)[0] if novel is not None else None
    if novel_row is not None and both_windows and novel_row[:2].sum() > 0:
        own = fisher_two_sided(int(novel_row[BASE]), int(novel_row[CUR]), n_base, n_cur)
        fam.units.append(Unit(own))
        fam.nodes.append([])
        fam.key.append("novel")
    drift_decision = hierarchical_bh(fam.units, levels.cluster_drift)
    changes: list[stats.ShareChange] = []
    novel_change: stats.ShareChange | None = None
    node_drift: dict[int, stats.ShareChange] = {}
    for u, key in enumerate(fam.key):
        row = per_cluster[key] if isinstance(key, int) else novel_row
        assert row is not None
        p_own = fam.units[u].own
        change = stats.share_change(
            int(row[BASE]), int(row[CUR]), n_base, n_cur,
            1.0 if p_own is None else p_own, drift_decision.own_q[u], **drift_kw,
        )  # fmt: skip
        if key == "novel":
            novel_change = change
        else:
            changes.append(change)
        qs = drift_decision.below_q[u]
        for j, v in enumerate(fam.nodes[u]):
            node_drift[v] = stats.share_change(
                int(per_node[v][BASE]), int(per_node[v][CUR]), n_base, n_cur,
                fam.units[u].below[j], None if qs is None else qs[j], **drift_kw,
            )  # fmt: skip

    # --- hotspots: persistent and emerging, one family ------------------------------------
    spots = HotspotTests(totals, settings)
    pooled = {kind: _pooled(kind, spots, per_cluster, labels, micro, rows, tree) for kind in KINDS}
    hot = _Family()
    at_parent: dict[tuple[str, int], int] = {}  # (kind, node above the cut) -> its unit
    cluster_unit: dict[tuple[str, int], tuple[int, str]] = {}
    for kind in KINDS:
        for c in range(n_clusters):
            if spots.supported(per_cluster[c], kind):
                below = [v for v in below_of(c) if spots.supported(per_node[v], kind)]
                own = float(spots.p_values(per_cluster[c], kind)[0])
                p_below = spots.p_values(
                    np.array([per_node[v] for v in below]).reshape(-1, 6), kind
                )
                hot.units.append(Unit(own, [float(p) for p in p_below]))
                hot.nodes.append(below)
                hot.key.append((kind, c))
                cluster_unit[(kind, c)] = (len(hot.units) - 1, "cluster")
                continue
            pool = pooled[kind]
            parent = next((a for a in above_of(c) if spots.supported(pool[a], kind)), None)
            if parent is None:
                continue
            if (kind, parent) not in at_parent:
                own = float(spots.p_values(pool[parent], kind)[0])
                hot.units.append(Unit(own))
                hot.nodes.append([])
                hot.key.append((kind, -1 - parent))
                at_parent[(kind, parent)] = len(hot.units) - 1
            cluster_unit[(kind, c)] = (at_parent[(kind, parent)], "parent")
    hot_decision: Decision = hierarchical_bh(hot.units, hot_level)
    prior_a, prior_b = stats.beta_prior(
        per_cluster[:, RATED_C].tolist(), per_cluster[:, DOWN_C].tolist()
    )

    def shrunk(row: np.ndarray) -> float:
        return float((row[DOWN_C] + prior_a) / (row[RATED_C] + prior_a + prior_b))

    verdicts: list[HotspotVerdict] = []
    for c in range(n_clusters):
        results: dict[str, KindResult] = {}
        level = "cluster"
        for kind in KINDS:
            found = cluster_unit.get((kind, c))
            if found is None:
                results[kind] = UNTESTED
                continue
            u, where = found
            row = per_cluster[c] if where == "cluster" else pooled[kind][-1 - hot.key[u][1]]  # type: ignore[index]
            results[kind] = spots.result(
                row, kind, hot.units[u].own, hot_decision.own_q[u], hot_level
            )
            level = where if where == "parent" else level
        verdicts.append(
            hotspot_verdict(per_cluster[c], spots, results, shrunk(per_cluster[c]), level)
        )
    node_hot: dict[int, dict[str, KindResult]] = {}
    for u, (kind, _c) in enumerate(hot.key):  # type: ignore[misc]
        qs = hot_decision.below_q[u]
        for j, v in enumerate(hot.nodes[u]):
            node_hot.setdefault(v, {})[kind] = spots.result(
                per_node[v], kind, hot.units[u].below[j], None if qs is None else qs[j],
                hot_level,
            )  # fmt: skip

    global_drift = stats.mmd_two_sample(
        vectors[~is_current], vectors[is_current], alpha=levels.global_drift,
        seed=settings.analysis_seed,
    )  # fmt: skip
    subs = (
        _subclusters(
            tree, n_clusters, node_drift, node_hot, per_node, spots, shrunk, changes, verdicts
        )
        if tree is not None
        else []
    )
    regressions = (
        regression_tests(
            labels,
            n_clusters,
            is_current,
            calls,
            fdr=levels.regressions,
            min_ratio=settings.regression_min_ratio,
            min_error_rise=settings.regression_min_error_rise,
        )  # fmt: skip
        if calls is not None
        else []
    )
    rephrase = (
        rephrase_tests(labels, n_clusters, is_current, rephrased, settings, level=levels.implicit)
        if implicit and rephrased is not None
        else []
    )
    return Verdicts(changes, verdicts, global_drift, novel_change, subs, regressions, rephrase)


def _subclusters(
    tree: Tree,
    n_clusters: int,
    node_drift: dict[int, stats.ShareChange],
    node_hot: dict[int, dict[str, KindResult]],
    per_node: dict[int, np.ndarray],
    spots: HotspotTests,
    shrunk: Callable[[np.ndarray], float],
    changes: list[stats.ShareChange],
    hotspots: list[HotspotVerdict],
) -> list[SubVerdict]:
    """The reported sub-clusters: per cluster and per test, the most specific flagged nodes."""
    out: list[SubVerdict] = []
    for c in range(n_clusters):
        top = tree.cut_root.get(c)
        if top is None:
            continue
        chosen: set[int] = set()
        below = set(tree.below(c))
        tests: list[tuple[dict[int, int], dict[int, float]]] = []
        drift_flags = {
            v: int(np.sign(d.score)) for v, d in node_drift.items() if v in below and d.flagged
        }
        drift_p = {v: d.p_value for v, d in node_drift.items() if v in below}
        drift_p[top] = changes[c].p_value
        if changes[c].flagged:
            drift_flags[top] = int(np.sign(changes[c].score))
        tests.append((drift_flags, drift_p))
        for kind in KINDS:
            flags = {
                v: 1 for v, r in node_hot.items() if v in below and kind in r and r[kind].flagged
            }
            hot_p: dict[int, float] = {}
            for v, r in node_hot.items():
                p_value = r[kind].p_value if v in below and kind in r else None
                if p_value is not None:
                    hot_p[v] = p_value
            own = getattr(hotspots[c], kind)
            if own.p_value is not None and hotspots[c].level == "cluster":
                hot_p[top] = own.p_value
                if own.flagged:
                    flags[top] = 1
            tests.append((flags, hot_p))
        for flags, p_values in tests:
            chosen.update(_most_specific(tree, top, flags, p_values))
        for v in sorted(chosen, key=lambda v: (-int(per_node[v][:2].sum()), v)):
            parent = tree.parent.get(v)
            while parent is not None and parent != top and parent not in chosen:
                parent = tree.parent.get(parent)
            results = {k: node_hot.get(v, {}).get(k, UNTESTED) for k in KINDS}
            row = per_node[v]
            drift = node_drift.get(v) or stats.share_change(
                int(row[BASE]), int(row[CUR]), 1, 1, 1.0, None
            )
            out.append(
                SubVerdict(
                    node=v,
                    cluster=c,
                    parent_node=None if parent == top else parent,
                    drift=drift,
                    hotspot=hotspot_verdict(row, spots, results, shrunk(row), "cluster"),
                )
            )
    return out
