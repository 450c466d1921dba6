"""The paired tests against values computed by hand (the sums are in the comments)."""

from __future__ import annotations

import pytest

from llmscope.evaluate.experiments.stats import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    compare,
    mcnemar_exact,
    mean_difference_ci,
    needed_pairs,
    pass_rate_ci,
    wilcoxon_signed_rank,
)


def pairs(b: int, c: int, both: int = 0, neither: int = 0) -> tuple[list[bool], list[bool]]:
    base = [True] * b + [False] * c + [True] * both + [False] * neither
    var = [False] * b + [True] * c + [True] * both + [False] * neither
    return base, var


def test_mcnemar_exact_matches_the_binomial_tail() -> None:
    # b=1, c=9: 2 * P(X <= 1 | n=10) = 2 * (1 + 10) / 1024
    test = mcnemar_exact(*pairs(1, 9, both=5, neither=5))
    assert (test.baseline_only, test.variant_only) == (1, 9)
    assert test.p_value == pytest.approx(22 / 1024)
    # b=2, c=8: 2 * (1 + 10 + 45) / 1024; concordant pairs change nothing
    assert mcnemar_exact(*pairs(2, 8)).p_value == pytest.approx(112 / 1024)
    assert mcnemar_exact(*pairs(2, 8, both=40)).p_value == pytest.approx(112 / 1024)
    # b=3, c=3: 2 * 42/64 > 1, capped
    assert mcnemar_exact(*pairs(3, 3)).p_value == 1.0
    assert mcnemar_exact(*pairs(0, 0, both=4)).p_value == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_agresti_min_interval() -> None:
    # b=1, c=9, n=20: cells + 0.5 -> b=1.5, c=9.5, n=22; diff = 8/22;
    # se = sqrt(11 - 64/22) / 22 = 0.1292933; z = 1.959964
    low, high = pass_rate_ci(1, 9, 20)
    assert low == pytest.approx(8 / 22 - 1.959964 * 0.1292933, abs=1e-6)
    assert high == pytest.approx(8 / 22 + 1.959964 * 0.1292933, abs=1e-6)
    assert pass_rate_ci(0, 30, 30)[1] == 1.0  # clipped
    low, high = pass_rate_ci(3, 3, 10)
    assert low == pytest.approx(-high)


def test_wilcoxon_exact_without_and_with_ties() -> None:
    # 1..5 all positive: W+ = 15, P(W+ >= 15) = 1/32, two-sided 2/32
    test = wilcoxon_signed_rank([1, 2, 3, 4, 5])
    assert (test.n, test.w_plus) == (5, 15.0)
    assert test.p_value == pytest.approx(2 / 32)
    # one negative (rank 2): W+ = 13; subsets of {1..5} summing >= 13 = those <= 2: 3 of 32
    assert wilcoxon_signed_rank([1, -2, 3, 4, 5]).p_value == pytest.approx(6 / 32)
    # ties and a zero: [0, 1, 1, -1, 2] -> ranks 2, 2, 2, 4 (zero dropped), W+ = 8;
    # sums 2k + 4j: P(W+ >= 8) = (3 + 1) / 16, two-sided 0.5
    tied = wilcoxon_signed_rank([0, 1, 1, -1, 2])
    assert (tied.n, tied.w_plus) == (4, 8.0)
    assert tied.p_value == pytest.approx(0.5)
    assert wilcoxon_signed_rank([0, 0]).p_value == 1.0
    # symmetric in sign
    assert wilcoxon_signed_rank([-1, -2, -3, -4, -5]).p_value == pytest.approx(2 / 32)


def test_paired_t_interval_of_the_mean_difference() -> None:
    # [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); t(0.975, 2) = 4.302653
    low, high = mean_difference_ci([1, 2, 3]) or (0.0, 0.0)
    assert low == pytest.approx(2 - 4.302653 / 3**0.5, abs=1e-5)
    assert high == pytest.approx(2 + 4.302653 / 3**0.5, abs=1e-5)
    assert mean_difference_ci([1.0]) is None


def test_needed_pairs_is_connors_formula() -> None:
    # b=2, c=4, n=20: psi=0.3, delta=0.1;
    # (1.959964*sqrt(0.3) + 0.841621*sqrt(0.29))**2 / 0.01 = 233.09 -> 234
    assert needed_pairs(2, 4, 20) == 234
    assert needed_pairs(3, 3, 20) is None


def test_verdicts() -> None:
    # every failure fixed: b=0, c=10, p = 2/1024
    fixed = compare(*pairs(0, 10, both=10))
    assert fixed.verdict == BETTER and fixed.p_value == pytest.approx(2 / 1024)
    assert fixed.pass_rate_difference == pytest.approx(0.5)
    assert fixed.ci is not None and fixed.ci[0] > 0
    broken = compare(*pairs(10, 0, both=10))
    assert broken.verdict == WORSE
    same = compare([True, False, True], [True, False, True], [5, 1, 4], [5, 1, 4])
    assert same.verdict == NO_DIFFERENCE and same.p_value == 1.0 and same.needed_sample is None
    assert same.score_p_value == 1.0 and same.mean_score_difference == 0.0
    small = compare(*pairs(2, 4, both=14))
    assert small.verdict == NO_DIFFERENCE and small.needed_sample == 234
    # unjudged records are left out of the pairs
    partial = compare([True, None, False], [True, True, None])
    assert partial.pairs == 1
    # scores alone decide when there is no pass/fail
    scored = compare([], [], [1, 1, 1, 1, 1, 1], [5, 4, 5, 5, 4, 5])
    assert scored.verdict == BETTER and scored.score_p_value == pytest.approx(2 / 64)
