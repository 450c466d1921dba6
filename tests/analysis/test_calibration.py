"""The whole report's false-alarm rate: two windows from one distribution must flag nothing.

Calls the flagging statistics the job uses (``pipeline.window_tests``) on synthetic draws, so
no embedding model is needed. The null test is seeded (no flakiness); its bounds are 99.9%
binomial quantiles at the nominal levels (alpha for the report, alpha/5 per family), tight
enough that the old allocation (alpha/2 + alpha/2 for drift and a separate alpha for hotspots,
2 alpha in all) fails it. The per-call figures of the regression family are drawn skewed, as
they are in production: log-normal latencies, integer output lengths with ties, costs from
two prices, rare errors. The last test adds every family tree testing brought: the Ward tree's nodes
below the cut, the novel group, persistent and emerging hotspots.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, norm

from llmscope.analysis import stats
from llmscope.analysis.cluster import cluster
from llmscope.analysis.hierarchy import Unit, hierarchical_bh
from llmscope.analysis.pipeline import Verdicts, window_tests
from llmscope.analysis.regressions import CallMetrics
from llmscope.analysis.tree import build_tree
from llmscope.config import Settings


def _null_draw(rng: np.random.Generator, n: int, k: int) -> tuple:
    """Cluster, window, embedding and thumb all independent: nothing to find."""
    labels = rng.integers(k, size=n)
    vectors = rng.normal(size=(n, 4))
    is_current = rng.random(n) < 0.5
    down = [bool(d) for d in rng.random(n) < 0.3]
    return labels, vectors, is_current, down


def _null_calls(rng: np.random.Generator, n: int) -> CallMetrics:
    """Per-call figures independent of cluster and window, skewed like real ones."""
    tokens = rng.geometric(1 / 120, size=n).astype(float)  # integers, many ties at small n
    price = np.where(rng.random(n) < 0.2, 6e-5, 1e-5)  # a large and a small model
    cost = np.where(rng.random(n) < 0.9, tokens * price, np.nan)  # 10% unpriced
    return CallMetrics(
        latency_ms=rng.lognormal(mean=6.0, sigma=0.8, size=n),
        output_tokens=tokens,
        cost_usd=cost,
        error=(rng.random(n) < 0.05).astype(float),
    )


def test_split_alpha_sums_to_alpha() -> None:
    split = stats.split_alpha(0.08)
    families = (
        split.global_drift,
        split.cluster_drift,
        split.hotspots,
        split.regressions,
        split.implicit,
    )
    assert families == pytest.approx((0.016,) * 5)
    # No record in a conversation: no implicit family, the other four share alpha.
    closed = stats.split_alpha(0.08, implicit=False)
    assert (closed.global_drift, closed.hotspots, closed.implicit) == (0.02, 0.02, 0.0)
    assert Settings(database_url="sqlite://", drift_alpha=0.08).hotspot_fdr == pytest.approx(0.016)


@pytest.mark.slow
def test_null_report_false_alarm_rate_is_at_most_alpha() -> None:
    # A large alpha makes 300 draws tell a family's share from more (the split is proportional,
    # so the default 0.05 is allocated the same way). The minimum-effect rules are off: they
    # only remove flags, so this checks the significance part of the guarantee at its loosest.
    alpha, draws = 0.3, 300
    settings = Settings(
        database_url="sqlite://",
        drift_alpha=alpha,
        drift_min_ratio=1.0,
        drift_min_share_change=0.0,
        hotspot_min_lift=1.0,
        regression_min_ratio=1.0,
        regression_min_error_rise=0.0,
    )
    rng = np.random.default_rng(1)
    alarms = dict.fromkeys(
        ("report", "global drift", "cluster drift", "hotspots", "regressions", "rephrases"), 0
    )
    for _ in range(draws):
        labels, vectors, is_current, down = _null_draw(rng, n=300, k=3)
        calls = _null_calls(rng, 300)
        # Rephrased or not (None: in no conversation), independent of cluster and window.
        kept = rng.random(300) < 0.8
        rephrased = [
            bool(r) if c else None for r, c in zip(rng.random(300) < 0.2, kept, strict=True)
        ]
        verdicts = window_tests(
            labels, 3, vectors, is_current, down, settings, calls=calls, rephrased=rephrased
        )
        alarms["report"] += verdicts.flagged
        alarms["global drift"] += verdicts.global_drift.flagged
        alarms["cluster drift"] += any(d.flagged for d in verdicts.drift)
        alarms["hotspots"] += any(h.flagged for h in verdicts.hotspots)
        alarms["regressions"] += any(r.flagged for c in verdicts.regressions for r in c.values())
        alarms["rephrases"] += any(r.flagged for r in verdicts.rephrase)
    # The whole report within alpha, and each family within its fifth (what makes the
    # report's bound hold at any alpha, not just on these draws): 115 and 31 of 300.
    bounds = {name: int(binom.ppf(0.999, draws, alpha / 5)) for name in alarms}
    bounds["report"] = int(binom.ppf(0.999, draws, alpha))
    assert all(alarms[name] <= bounds[name] for name in alarms), (alarms, bounds)
    assert alarms["report"] > 0  # the draws do exercise the tests: a dead test flags nothing
    assert alarms["regressions"] > 0
    assert alarms["rephrases"] > 0


def test_planted_drift_and_hotspot_are_flagged_at_the_default_alpha() -> None:
    settings = Settings(database_url="sqlite://")  # alpha 0.05, default effect-size rules
    rng = np.random.default_rng(2)
    labels, vectors, is_current, down = _null_draw(rng, n=2000, k=5)
    # Cluster 5 is new: 150 current-window records far from the rest in embedding space.
    labels = np.r_[labels, np.full(150, 5)]
    vectors = np.vstack([vectors, rng.normal(size=(150, 4)) + 4.0])
    is_current = np.r_[is_current, np.ones(150, dtype=bool)]
    down = [*down, *(bool(d) for d in rng.random(150) < 0.3)]
    # Cluster 0's current-window answers are thumbed down 70% of the time (30% elsewhere).
    down = [
        bool(rng.random() < 0.7) if labels[i] == 0 and is_current[i] else d
        for i, d in enumerate(down)
    ]
    # Cluster 1's current calls went to a slower model: 1.6x the latency.
    calls = _null_calls(rng, len(labels))
    slower = (labels == 1) & is_current
    calls.latency_ms[slower] *= 1.6
    verdicts: Verdicts = window_tests(labels, 6, vectors, is_current, down, settings, calls=calls)
    assert verdicts.global_drift.flagged
    assert verdicts.drift[5].flagged and verdicts.drift[5].kind == "new"
    assert verdicts.hotspots[0].flagged
    assert [i for i, h in enumerate(verdicts.hotspots) if h.flagged] == [0]
    flagged = [
        (c, m) for c, ms in enumerate(verdicts.regressions) for m, r in ms.items() if r.flagged
    ]
    assert flagged == [(1, "latency_ms")]
    assert verdicts.flagged


@pytest.mark.slow
def test_null_false_alarm_rate_with_the_tree_novel_group_and_both_hotspot_kinds() -> None:
    # The same bound with every family the job runs: drift on clusters, on the Ward-tree nodes
    # below them and on a novel group; persistent and emerging hotspots on clusters and nodes;
    # the regressions of every cluster.
    alpha, draws, n = 0.3, 300, 300
    settings = Settings(
        database_url="sqlite://",
        drift_alpha=alpha,
        drift_min_ratio=1.0,
        drift_min_share_change=0.0,
        hotspot_min_lift=1.0,
        regression_min_ratio=1.0,
        regression_min_error_rise=0.0,
    )
    rng = np.random.default_rng(5)
    points = np.vstack([rng.normal(size=(75, 2)) + 6 * i for i in range(4)])
    clustering = cluster(points, min_size=10, seed=0)
    tree = build_tree(clustering)
    assert tree is not None and clustering.micro_labels is not None
    assert sum(len(tree.below(c)) for c in range(clustering.n_clusters)) > 40  # a real tree
    novel = rng.random(n) < 0.05
    alarms = {"report": 0, "global drift": 0, "drift": 0, "hotspots": 0, "below": 0}
    alarms["regressions"] = 0
    for _ in range(draws):
        is_current = rng.random(n) < 0.5
        rated, thumbs_down = rng.random(n) < 0.6, rng.random(n) < 0.3
        down = [bool(d) if r else None for r, d in zip(rated, thumbs_down, strict=True)]
        v = window_tests(
            clustering.labels, clustering.n_clusters, points, is_current, down, settings,
            tree=tree, micro=clustering.micro_labels, novel=novel, calls=_null_calls(rng, n),
        )  # fmt: skip
        alarms["report"] += v.flagged
        alarms["global drift"] += v.global_drift.flagged
        alarms["drift"] += (
            any(d.flagged for d in v.drift)
            or bool(v.novel and v.novel.flagged)
            or any(s.drift.flagged for s in v.subclusters)
        )
        alarms["hotspots"] += any(h.flagged for h in v.hotspots) or any(
            s.hotspot.flagged for s in v.subclusters
        )
        alarms["below"] += bool(v.subclusters)
        alarms["regressions"] += any(r.flagged for c in v.regressions for r in c.values())
    bounds = {name: int(binom.ppf(0.999, draws, alpha / 4)) for name in alarms}
    bounds["report"] = int(binom.ppf(0.999, draws, alpha))
    assert all(alarms[name] <= bounds[name] for name in alarms), (alarms, bounds)
    assert alarms["report"] > 0 and alarms["below"] > 0  # the tree's tests do run and flag


def test_tree_procedure_null_rate_with_nested_positively_dependent_p_values() -> None:
    # The top family lists each unit's own test and the Simes p-value of its nodes as two BH
    # entries. Under the complete null with nested nodes (each node's z is the scaled sum of
    # its 8 leaves' independent normals: the positive dependence of a tree), any rejection, at
    # the top or inside an opened unit, must stay within q. 2,000 draws of 20 units at q = 0.1.
    q, draws, units, leaves = 0.1, 2000, 20, 8
    rng = np.random.default_rng(12)
    # Nodes below a unit: the two halves, then the four quarters (as a Ward subtree).
    parts = [slice(0, 4), slice(4, 8), slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    alarms = 0
    for _ in range(draws):
        z = rng.normal(size=(units, leaves))
        own = norm.sf(z.sum(axis=1) / np.sqrt(leaves))
        below = np.column_stack(
            [norm.sf(z[:, part].sum(axis=1) / np.sqrt(part.stop - part.start)) for part in parts]
        )
        tree = [Unit(float(o), b.tolist()) for o, b in zip(own, below, strict=True)]
        d = hierarchical_bh(tree, q)
        alarms += any(v is not None and v <= q for v in d.own_q) or any(
            qs is not None and min(qs) <= q for qs in d.below_q
        )
    assert 0 < alarms <= binom.ppf(0.999, draws, q), alarms
