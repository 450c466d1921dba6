"""The per-cluster regression tests on small hand-made inputs whose answers are known."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from llmscope.analysis.regressions import (
    METRICS,
    CallMetrics,
    cost_test,
    error_test,
    median_test,
    regression_tests,
)

NAN = float("nan")


def test_median_test_on_fully_separated_windows_is_the_hypergeometric_extreme() -> None:
    # Ten calls at 100 ms before, ten at 300 ms now: all current calls above the pooled median.
    # Two-sided: both fully separated tables, each with probability 1 / C(20, 10).
    p = median_test(np.full(10, 100.0), np.full(10, 300.0))
    assert p == pytest.approx(2 / comb(20, 10))


def test_a_slower_tail_alone_is_no_median_regression() -> None:
    # Half the calls at 100 ms in both windows; the other half 200-300 ms before and
    # 1,000-1,100 ms now (100 calls a window). The median call is as fast as before (the
    # pooled median splits the halves), which Mann-Whitney would call a significant change.
    fast = np.full(50, 100.0)
    base = np.r_[fast, np.linspace(200, 300, 50)]
    cur = np.r_[fast, np.linspace(1000, 1100, 50)]
    assert median_test(base, cur) == pytest.approx(1.0)
    assert mannwhitneyu(cur, base).pvalue < 0.01


def test_median_test_ties_at_the_median_count_as_not_above() -> None:
    # Token counts: 10 x 50 before, 5 x 50 and 5 x 80 now. Pooled median 50: 5 of the current
    # above it, none of the baseline: the two-sided Fisher sum over tables as unlikely.
    p = median_test(np.full(10, 50.0), np.r_[np.full(5, 50.0), np.full(5, 80.0)])
    # Tables with a current count above of k (margins: 10 current, 10 baseline, 5 above).
    prob = [comb(10, k) * comb(10, 5 - k) / comb(20, 5) for k in range(6)]
    assert p == pytest.approx(sum(q for q in prob if q <= prob[5] * (1 + 1e-7)))


def test_error_test_is_fishers_exact() -> None:
    # 10 of 20 current calls failed, none of 100 before: the observed table is the most
    # extreme one (the other tail, no current error, is far likelier), so p = P(X = 10).
    p = error_test(np.zeros(100), np.r_[np.ones(10), np.zeros(10)])
    assert p == pytest.approx(comb(20, 10) / comb(120, 10))


def test_cost_test_on_constant_windows_compares_exactly() -> None:
    assert cost_test(np.full(12, 0.002), np.full(12, 0.002)) == 1.0
    assert cost_test(np.full(12, 0.002), np.full(12, 0.006)) == 0.0
    assert cost_test(np.r_[np.full(6, 0.001), np.full(6, 0.003)], np.full(12, 0.002)) == (
        pytest.approx(1.0)
    )


def _calls(latency: list[float], tokens: list[float], cost: list[float], error: list[bool]):
    return CallMetrics(
        latency_ms=np.array(latency, dtype=float),
        output_tokens=np.array(tokens, dtype=float),
        cost_usd=np.array(cost, dtype=float),
        error=np.array(error, dtype=float),
    )


def test_regression_tests_flag_rises_not_falls_and_need_enough_calls() -> None:
    # Cluster 0: 20 calls a window, latency 100 -> 300 ms (a regression), tokens 200 -> 100
    # (a length change, flagged either way), cost 0.002 -> 0.001 (a fall: no regression),
    # errors 0 -> 1 of 20 (too small a rise). Cluster 1: 20 baseline calls, 5 current: untested.
    n0, n1 = 40, 25
    labels = np.r_[np.zeros(n0, dtype=int), np.ones(n1, dtype=int)]
    is_current = np.r_[np.arange(n0) >= 20, np.arange(n1) >= 20]
    latency = [100.0] * 20 + [300.0] * 20 + [100.0] * 25
    tokens = [200.0] * 20 + [100.0] * 20 + [200.0] * 25
    cost = [0.002] * 20 + [0.001] * 20 + [NAN] * 25  # cluster 1 unpriced
    error = [False] * 39 + [True] + [False] * 25
    out = regression_tests(
        labels, 2, is_current, _calls(latency, tokens, cost, error),
        fdr=0.05, min_ratio=1.25, min_error_rise=0.02,
    )  # fmt: skip
    latency0, tokens0, cost0, errors0 = (out[0][m] for m in METRICS)
    assert (latency0.baseline, latency0.current, latency0.ratio) == (100.0, 300.0, 3.0)
    assert latency0.p_value == pytest.approx(2 / comb(40, 20)) and latency0.flagged
    assert (latency0.baseline_calls, latency0.current_calls) == (20, 20)
    assert tokens0.ratio == 0.5 and tokens0.flagged  # shorter answers are flagged too
    assert cost0.ratio == 0.5 and cost0.p_value == 0.0 and not cost0.flagged  # cheaper is fine
    assert errors0.current == 0.05 and errors0.p_value == 1.0 and not errors0.flagged
    # Four tests of cluster 0 in the family (BH): cost's exact 0 ranks first, latency and
    # tokens tie at ranks 2 and 3 and share the step-up minimum p x 4 / 3.
    assert latency0.q_value == pytest.approx(latency0.p_value * 4 / 3)
    for metric, r in out[1].items():
        assert r.p_value is None and r.q_value is None and not r.flagged, metric
    assert out[1]["cost_usd"].baseline is None and out[1]["cost_usd"].baseline_calls == 0
    assert out[1]["latency_ms"].current_calls == 5


def test_an_error_rate_rise_is_flagged_from_a_clean_baseline() -> None:
    labels = np.zeros(60, dtype=int)
    is_current = np.arange(60) >= 30
    error = [False] * 30 + [True] * 12 + [False] * 18
    flat = [1.0] * 60
    (out,) = regression_tests(
        labels, 1, is_current, _calls(flat, flat, flat, error),
        fdr=0.05, min_ratio=1.25, min_error_rise=0.02,
    )  # fmt: skip
    r = out["error_rate"]
    assert (r.baseline, r.current, r.ratio) == (0.0, 0.4, None)
    # 12 errors, 30 calls a window: both tails as extreme, p = 2 P(X = 12)
    assert r.flagged and r.p_value == pytest.approx(2 * comb(30, 12) / comb(60, 12))
