"""The statistics on small hand-made inputs whose right answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmscope.analysis import stats


def test_benjamini_hochberg_on_a_known_vector() -> None:
    # sorted: 0.005, 0.01, 0.03, 0.04 -> p*m/rank: 0.02, 0.02, 0.04, 0.04 (already monotone)
    q = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_benjamini_hochberg_takes_the_running_minimum_and_caps_at_one() -> None:
    # p*m/rank: 0.03*3/1=0.09, 0.04*3/2=0.06, 0.9*3/3=0.9 -> q(0.03) = min(0.09, 0.06) = 0.06
    assert stats.benjamini_hochberg([0.9, 0.03, 0.04]) == pytest.approx([0.9, 0.06, 0.06])
    assert stats.benjamini_hochberg([1.0, 1.0]) == [1.0, 1.0]
    assert stats.benjamini_hochberg([]) == []


def test_hotspot_fisher_p_value_by_hand() -> None:
    # Cluster 0: 3 of 3 rated are down; the rest: 0 of 3. One-sided Fisher: the probability of
    # all 3 downs landing in cluster 0 among C(6, 3) equally likely ways = 1/20.
    spots = stats.hotspots([3, 3], [3, 0], min_rated=3, fdr=0.15, min_lift=1.5)
    assert spots[0].p_value == pytest.approx(1 / 20)
    assert spots[1].p_value == pytest.approx(1.0)
    assert spots[0].q_value == pytest.approx(0.1)  # 0.05 * 2 tests / rank 1
    assert spots[0].lift == pytest.approx(2.0)  # rate 1.0 against an overall 0.5
    assert spots[0].flagged  # q 0.1 <= fdr 0.15, lift 2 >= 1.5
    assert not spots[1].flagged


def test_hotspot_needs_support_and_lift() -> None:
    spots = stats.hotspots([5, 200, 200], [5, 20, 20], min_rated=10)
    assert spots[0].p_value is None and spots[0].q_value is None and not spots[0].flagged
    # Same rate as everyone else: a lift of 1, never a hotspot whatever the p-value.
    flat = stats.hotspots([500, 500], [100, 100], min_rated=10)
    assert [s.flagged for s in flat] == [False, False]
    assert flat[0].lift == pytest.approx(1.0)


def test_shrunken_rate_keeps_a_tiny_cluster_from_dominating_the_ranking() -> None:
    rated, down = [2, 400, 400, 400], [2, 200, 40, 40]
    spots = stats.hotspots(rated, down)
    assert spots[0].down_rate == 1.0 > spots[1].down_rate
    assert spots[0].shrunken_rate < spots[1].shrunken_rate
    # The big cluster's estimate hardly moves: 400 ratings outweigh the prior.
    assert spots[1].shrunken_rate == pytest.approx(0.5, abs=0.03)


def test_share_changes_label_new_vanished_grew_shrank_and_stable() -> None:
    baseline = [400, 200, 0, 200, 200]
    current = [400, 0, 200, 350, 50]
    changes = stats.share_changes(baseline, current)
    assert [c.kind for c in changes] == ["stable", "vanished", "new", "grew", "shrank"]
    assert changes[0].p_value == pytest.approx(1.0)
    assert not changes[0].flagged and all(c.flagged for c in changes[1:])
    assert changes[2].score > 0 > changes[1].score


def test_share_change_needs_a_minimum_effect() -> None:
    # 50,000 vs 50,000 records: 10.0% -> 10.6% is significant but a factor of 1.06 only.
    changes = stats.share_changes(
        [5000], [5300], baseline_total=50_000, current_total=50_000, min_ratio=1.5
    )
    assert changes[0].p_value < 0.01
    assert not changes[0].flagged and changes[0].kind == "stable"


def test_share_change_two_sided_fisher_by_hand() -> None:
    # Table [[3, 0], [0, 3]]: two-sided Fisher p = 2/20 (both extreme tables).
    changes = stats.share_changes([0, 3], [3, 0])
    assert changes[0].p_value == pytest.approx(0.1)


def test_mmd_does_not_flag_identical_distributions_across_seeds() -> None:
    flags = 0
    p_values = []
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
        result = stats.mmd_two_sample(x, y, seed=seed, n_permutations=200)
        flags += result.flagged
        p_values.append(result.p_value)
    assert flags <= 2  # nominal 5% of 20 runs is 1
    assert 0.3 < float(np.mean(p_values)) < 0.7  # p-values spread over (0, 1) under the null


def test_mmd_flags_a_clear_shift() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(300, 8))
        y = rng.normal(size=(300, 8)) + np.r_[0.6, np.zeros(7)]
        result = stats.mmd_two_sample(x, y, seed=seed, n_permutations=200)
        assert result.flagged and result.p_value == pytest.approx(1 / 201)
        assert result.statistic > 0 and "mmd" in result.method


def test_compare_versions_by_hand() -> None:
    a = stats.VersionSample("1", records=6, rated=6, down=0, latencies_ms=[1, 2, 3])
    b = stats.VersionSample("2", records=6, rated=6, down=6, latencies_ms=[10, 20, 30])
    [row] = stats.compare_versions([a, b])
    assert (row.version, row.against) == ("2", "1")
    assert row.down_rate == 1.0 and row.against_down_rate == 0.0
    # Fisher [[6, 0], [0, 6]] two-sided: 2 / C(12, 6) = 2/924.
    assert row.down_p_value == pytest.approx(2 / 924)
    # Mann-Whitney U, exact, 3 vs 3, complete separation: 2 / C(6, 3) = 0.1.
    assert row.latency_p_value == pytest.approx(0.1)
    assert row.latency_p50_ms == 20 and row.against_latency_p50_ms == 2
    assert row.down_q_value == pytest.approx(2 / 924 * 2)  # BH over 2 tests, rank 1
    assert math.isclose(row.latency_q_value or 0, 0.1)
