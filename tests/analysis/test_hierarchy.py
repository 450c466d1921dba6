"""The tree-testing statistics on small hand-made inputs whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact

from llmscope.analysis.cluster import Clustering
from llmscope.analysis.hierarchy import (
    Unit,
    excess_p_values,
    hierarchical_bh,
    share_p_values,
    simes,
    top_entries,
)
from llmscope.analysis.tree import build_tree
from llmscope.analysis.verdicts import window_tests
from llmscope.config import Settings


def test_simes_by_hand() -> None:
    # sorted 0.01, 0.02, 0.9: m p / j = 0.03, 0.03, 0.9 -> 0.03
    assert simes([0.9, 0.02, 0.01]) == pytest.approx(0.03)
    assert simes([0.5]) == 0.5
    assert simes([]) == 1.0


def test_top_family_lists_each_units_own_and_below_entries() -> None:
    assert top_entries([Unit(0.01)]) == [(0, True, 0.01)]
    assert top_entries([Unit(None, [0.01, 0.04])]) == [(0, False, pytest.approx(0.02))]
    assert top_entries([Unit(0.03, [0.01, 0.04]), Unit(None)]) == [
        (0, True, 0.03),
        (0, False, pytest.approx(0.02)),  # simes: min(2 * 0.01, 2 * 0.04 / 2)
    ]


def test_hierarchical_bh_opens_only_units_whose_below_entry_passes() -> None:
    units = [Unit(0.001, [0.0001, 0.5]), Unit(0.2, [0.3]), Unit(0.04)]
    d = hierarchical_bh(units, 0.05)
    # entries: 0.001, simes(0.0001, 0.5) = 0.0002, 0.2, 0.3, 0.04 (m = 5); sorted with
    # m p / j: 0.0002*5 = 0.001, 0.001*5/2 = 0.0025, 0.04*5/3 = 0.0667, 0.2*5/4 = 0.25, 0.3
    assert d.own_q == pytest.approx([0.0025, 0.25, 0.04 * 5 / 3])
    assert d.gate_q == pytest.approx([0.001, 0.25, 0.04 * 5 / 3])
    assert d.below_q[0] == pytest.approx([0.0002, 0.5])  # BH inside the opened unit
    assert d.below_q[1] is None and d.below_q[2] is None  # not opened


def test_a_unit_whose_own_and_below_both_carry_the_effect_is_not_charged_twice() -> None:
    # One unit with own 0.003 and nodes (0.003, 0.004), nine calm units (0.5 and 0.5 below).
    # The former gate, 2 * min(own, simes) = 0.006 over 10 units, gave own q = 0.06 > 0.05.
    # Now 20 entries: 0.003 * 20 = 0.06, simes 0.004 * 20 / 2 = 0.04: own q = 0.04 (BH's
    # running minimum), and the nodes are opened.
    units = [Unit(0.003, [0.003, 0.004])] + [Unit(0.5, [0.5])] * 9
    d = hierarchical_bh(units, 0.05)
    assert d.own_q[0] == pytest.approx(0.04)
    assert d.below_q[0] == pytest.approx([0.004, 0.004])
    assert all(q is None for q in d.below_q[1:])


def test_own_rejections_are_always_opened_units() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        units = [
            Unit(float(rng.random() ** 3), [float(p) for p in rng.random(int(rng.integers(0, 4)))])
            for _ in range(6)
        ]
        d = hierarchical_bh(units, 0.1)
        for own, opened in zip(d.own_q, d.gate_q, strict=True):
            if own is not None and own <= 0.1:
                assert opened is not None and opened <= 0.1


def test_vectorised_p_values_match_fisher() -> None:
    # One-sided: exactly Fisher's "greater" on (down, not down) x (here, elsewhere).
    p = excess_p_values(np.array([3, 5]), np.array([3, 10]), 6, 20)
    assert p[0] == pytest.approx(fisher_exact([[3, 0], [3, 14]], alternative="greater")[1])
    assert p[1] == pytest.approx(fisher_exact([[5, 5], [1, 9]], alternative="greater")[1])
    # Two-sided by doubling: the [[3, 0], [0, 3]] table gives 2 * 1/20.
    assert share_p_values(np.array([0]), np.array([3]), 3, 3)[0] == pytest.approx(0.1)


def _clustering(micro_cluster: tuple[int, ...] = (0, 0, 1, 1)) -> Clustering:
    # 4 micro-clusters: (0, 1) merge first (node 4), then (2, 3) (node 5), then the two pairs
    # (the root, node 6). The default cut: 2 clusters, cluster 0 = micro 0 and 1, cluster 1 =
    # micro 2 and 3; ``micro_cluster`` gives each micro-cluster's cluster for another cut.
    z = np.array([[0, 1, 1.0, 2], [2, 3, 1.0, 2], [4, 5, 5.0, 4]], dtype=float)
    micro = np.repeat(np.arange(4), 40)
    return Clustering(
        labels=np.array(micro_cluster, dtype=np.int64)[micro],
        n_clusters=max(micro_cluster) + 1,
        silhouette=None,
        micro_labels=micro,
        linkage=z,
        micro_cluster=np.array(micro_cluster),
    )


def test_tree_knows_the_nodes_below_and_above_each_cluster() -> None:
    tree = build_tree(_clustering())
    assert tree is not None
    assert tree.cut_root == {0: 4, 1: 5}
    assert tree.below(0) == [0, 1] and tree.below(1) == [2, 3]
    assert tree.above(0) == [6] and tree.root == 6
    sums = tree.sums(np.eye(4, dtype=np.int64))
    assert sums[6].tolist() == [1, 1, 1, 1] and sums[4].tolist() == [1, 1, 0, 0]


def test_a_new_topic_inside_a_stable_cluster_is_a_sub_cluster() -> None:
    clustering = _clustering()
    tree = build_tree(clustering)
    micro = clustering.micro_labels
    assert micro is not None
    # Micro 1 is new: all 40 of its records are current. The rest: half and half.
    is_current = np.r_[np.arange(40) % 2 == 0, np.ones(40, bool), np.arange(80) % 2 == 0]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(160, 4))
    down = [None] * 160
    settings = Settings(database_url="sqlite://")
    v = window_tests(
        clustering.labels, 2, vectors, is_current, down, settings, tree=tree, micro=micro
    )
    # Cluster 0 grew (60 of 100 current records against 20 of 60), and below it micro 1 is new.
    assert v.drift[0].flagged and v.drift[0].kind == "grew"
    [sub] = v.subclusters
    assert (sub.node, sub.cluster, sub.parent_node) == (1, 0, None)
    assert sub.drift.flagged and sub.drift.kind == "new"
    assert not v.drift[1].flagged or v.drift[1].kind == "shrank"


def test_a_new_topic_inside_a_cluster_that_shrinks_is_still_reported() -> None:
    # Micro 0: 140 baseline and 10 current records; micro 1 (new): 30 current; cluster 1
    # (micros 2, 3): 30 and 30 in each window. Cluster 0 shrank (share 0.7 -> 0.4); the new
    # topic below it is flagged the other way, an effect of its own, so it is reported too.
    tree = build_tree(_clustering())
    micro = np.repeat(np.arange(4), [150, 30, 60, 60])
    is_current = np.r_[np.arange(150) >= 140, np.ones(30, bool), np.arange(120) % 2 == 0]
    labels = (micro >= 2).astype(np.int64)
    vectors = np.random.default_rng(0).normal(size=(300, 4))
    settings = Settings(database_url="sqlite://")
    v = window_tests(labels, 2, vectors, is_current, [None] * 300, settings, tree=tree, micro=micro)
    assert v.drift[0].flagged and v.drift[0].kind == "shrank"
    kinds = {s.node: s.drift.kind for s in v.subclusters if s.drift.flagged}
    assert kinds.get(1) == "new"


def test_persistent_and_emerging_hotspots_and_a_small_cluster_tested_at_its_parent() -> None:
    clustering = _clustering()
    tree = build_tree(clustering)
    micro = clustering.micro_labels
    assert micro is not None
    is_current = np.arange(160) % 2 == 0
    vectors = np.zeros((160, 4))
    rate = np.full(160, 0.05)
    rate[:40] = 0.6  # micro 0 (in cluster 0): bad in both windows -> persistent
    rate[80:120] = np.where(is_current[80:120], 0.7, 0.05)  # micro 2: bad now -> emerging
    rng = np.random.default_rng(3)
    down = [bool(rng.random() < r) for r in rate]
    settings = Settings(database_url="sqlite://")
    v = window_tests(
        clustering.labels, 2, vectors, is_current, down, settings, tree=tree, micro=micro
    )
    # Cluster 0 is diluted by its calm half (lift 1.2 over both windows): only below the cut
    # is micro 0 a hotspot, in both windows, so persistent.
    assert not v.hotspots[0].flagged and v.hotspots[0].persistent.effect < 1.5
    assert v.hotspots[1].flagged and v.hotspots[1].kind == "emerging"
    assert v.hotspots[1].emerging.effect > 3  # rise over its own baseline rate
    kinds = {(s.node, s.hotspot.kind) for s in v.subclusters if s.hotspot.flagged}
    assert (0, "persistent") in kinds and (2, "emerging") in kinds

    # Too few ratings in each cluster: tested once, at the node above both (the root).
    sparse = [d if i % 16 == 0 else None for i, d in enumerate(down)]
    v = window_tests(
        clustering.labels, 2, vectors, is_current, sparse, settings, tree=tree, micro=micro
    )
    assert v.hotspots[0].level == "parent" and v.hotspots[0].persistent.rated == 10
    assert v.hotspots[0].persistent.p_value == v.hotspots[1].persistent.p_value


def test_a_sparsely_rated_cluster_is_not_flagged_by_its_well_rated_hot_sibling() -> None:
    # The same tree cut into 3: cluster 0 = micro 0, cluster 1 = micro 1, cluster 2 = micros 2, 3.
    clustering = _clustering((0, 1, 2, 2))
    tree = build_tree(clustering)
    assert tree is not None and tree.above(1) == [4, 6]
    micro = clustering.micro_labels
    assert micro is not None
    is_current = np.arange(160) % 2 == 0
    # Cluster 0: every record rated, 30 of 40 thumbs-down; cluster 1: two ratings, both up;
    # clusters 2: every record rated, 4 of 80 down.
    down: list[bool | None] = [i % 4 != 0 for i in range(40)]
    down += [False, False] + [None] * 38
    down += [i % 20 == 0 for i in range(80)]
    settings = Settings(database_url="sqlite://")
    v = window_tests(
        clustering.labels, 3, np.zeros((160, 4)), is_current, down, settings, tree=tree, micro=micro
    )
    assert v.hotspots[0].flagged and v.hotspots[0].level == "cluster"
    # Node 4 holds cluster 0's 30 thumbs-down, but cluster 0 is tested on its own: cluster 1's
    # pool is its own 2 ratings at node 4 and at the root, too few, so it is not tested.
    assert not v.hotspots[1].flagged
    assert v.hotspots[1].persistent.p_value is None and v.hotspots[1].level == "cluster"

    # Both small clusters sparsely rated (6 ratings each, all down): pooled at node 4 (12
    # ratings), tested once for both, and flagged.
    sparse: list[bool | None] = [True] * 6 + [None] * 34 + [True] * 6 + [None] * 34
    sparse += [i % 20 == 0 for i in range(80)]
    v = window_tests(
        clustering.labels, 3, np.zeros((160, 4)), is_current, sparse, settings, tree=tree,
        micro=micro,
    )  # fmt: skip
    for c in (0, 1):
        assert v.hotspots[c].level == "parent" and v.hotspots[c].flagged
        assert (v.hotspots[c].persistent.rated, v.hotspots[c].persistent.down) == (12, 12)
    assert not v.hotspots[2].flagged and v.hotspots[2].level == "cluster"
