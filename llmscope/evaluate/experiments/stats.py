"""The paired comparison of a variant with the baseline, as pure functions.

Every record of an experiment is answered twice, by production (the baseline) and by the
variant, and judged both times, so the two samples are paired and the tests here are the
paired ones:

- :func:`mcnemar_exact`: pass/fail. Only the discordant pairs carry information: ``b`` records
  the baseline passed and the variant failed, ``c`` the other way round. Under "no difference"
  each discordant pair is a fair coin, so the two-sided p-value is twice the binomial tail of
  ``min(b, c)`` in ``b + c`` tosses (capped at 1).
- :func:`pass_rate_ci`: the confidence interval of the pass-rate difference (variant minus
  baseline) for paired proportions, Agresti and Min's adjusted Wald interval (half a pair added
  to each of the four cells), which keeps its coverage when the counts are small or extreme.
- :func:`wilcoxon_signed_rank`: scores. Zero differences are dropped (Wilcoxon's rule), the rest
  ranked by size with average ranks for ties; the p-value is exact, from the distribution of the
  positive rank sum over all sign flips of *these* ranks (so ties cost nothing), computed by
  convolution on doubled ranks. Judges' 1–5 scores tie all the time, which is why the exact
  conditional distribution is used rather than a normal approximation.
- :func:`mean_difference_ci`: the paired t interval of the mean score difference.
- :func:`compare`: all of the above and a plain verdict, ``better``, ``worse`` or
  ``no detectable difference``; for the last, the number of records it would take to tell the
  observed difference from none with 80% power (Connor's sample size for paired proportions;
  ``None`` when the variant and the baseline never disagreed, as no sample would tell then).

Nothing here touches the store or the gateway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# scipy.stats is imported where it is used: at module level it was half of the collector's
# import time (about 0.5 s of every ``llmscope serve`` start), paid even when no experiment runs.

ALPHA = 0.05
POWER = 0.8
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no detectable difference"


@dataclass(frozen=True)
class McNemar:
    baseline_only: int  # b: pairs where only the baseline passed
    variant_only: int  # c: pairs where only the variant passed
    p_value: float


@dataclass(frozen=True)
class Wilcoxon:
    n: int  # non-zero differences
    w_plus: float  # sum of the ranks of the positive differences
    p_value: float


@dataclass(frozen=True)
class Comparison:
    """A variant against the baseline on the same records."""

    pairs: int  # records with a pass/fail from both sides
    pass_rate_difference: float | None  # variant minus baseline
    ci: tuple[float, float] | None  # of the pass-rate difference
    p_value: float | None  # exact McNemar
    score_pairs: int
    mean_score_difference: float | None
    score_ci: tuple[float, float] | None
    score_p_value: float | None  # Wilcoxon signed-rank
    verdict: str
    needed_sample: int | None  # records it would take to tell, when the verdict is no difference


def mcnemar_exact(baseline: Sequence[bool], variant: Sequence[bool]) -> McNemar:
    """Exact two-sided McNemar test on paired pass/fail outcomes."""
    from scipy.stats import binom

    if len(baseline) != len(variant):
        raise ValueError("baseline and variant must be paired (same length)")
    b = sum(1 for x, y in zip(baseline, variant, strict=True) if x and not y)
    c = sum(1 for x, y in zip(baseline, variant, strict=True) if y and not x)
    n = b + c
    p = 1.0 if n == 0 else min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))
    return McNemar(b, c, p)


def pass_rate_ci(b: int, c: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Agresti–Min interval of the paired pass-rate difference ``(c - b) / n``."""
    from scipy.stats import norm

    if n <= 0:
        raise ValueError("no pairs")
    z = float(norm.ppf(0.5 + level / 2))
    b2, c2, n2 = b + 0.5, c + 0.5, n + 2.0
    diff = (c2 - b2) / n2
    se = math.sqrt(max((b2 + c2) - (c2 - b2) ** 2 / n2, 0.0)) / n2
    return max(-1.0, diff - z * se), min(1.0, diff + z * se)


def _rank_abs(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of ``values``, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def wilcoxon_signed_rank(differences: Sequence[float]) -> Wilcoxon:
    """Exact two-sided Wilcoxon signed-rank test of paired differences (zeros dropped)."""
    d = np.asarray([x for x in differences if x != 0], dtype=float)
    n = int(d.size)
    if n == 0:
        return Wilcoxon(0, 0.0, 1.0)
    ranks = _rank_abs(np.abs(d))
    doubled = np.rint(ranks * 2).astype(int)  # average ranks are halves: doubled, integers
    w_plus = float(ranks[d > 0].sum())
    # counts[s] = sign assignments whose doubled positive rank sum is s (each 1/2**n likely)
    counts = np.zeros(int(doubled.sum()) + 1)
    counts[0] = 1.0
    for r in doubled:
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[: counts.size - r]
        counts = counts + shifted
    probs = counts / counts.sum()
    s = int(round(w_plus * 2))
    lower, upper = float(probs[: s + 1].sum()), float(probs[s:].sum())
    return Wilcoxon(n, w_plus, min(1.0, 2 * min(lower, upper)))


def mean_difference_ci(
    differences: Sequence[float], level: float = 0.95
) -> tuple[float, float] | None:
    """Paired t interval of the mean difference; None with fewer than two pairs."""
    from scipy.stats import t as student_t

    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return None
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    half = float(student_t.ppf(0.5 + level / 2, d.size - 1)) * se
    return mean - half, mean + half


def needed_pairs(b: int, c: int, n: int, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Records needed to detect the observed paired difference (Connor 1987); None if b == c."""
    from scipy.stats import norm

    if n <= 0 or b == c:
        return None
    psi = (b + c) / n  # the share of discordant pairs
    delta = (c - b) / n
    za, zb = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    root = za * math.sqrt(psi) + zb * math.sqrt(max(psi - delta**2, 0.0))
    return math.ceil(root**2 / delta**2)


def _needed_for_scores(diffs: np.ndarray, alpha: float, power: float) -> int | None:
    from scipy.stats import norm

    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1)) if diffs.size > 1 else 0.0
    if mean == 0 or sd == 0:
        return None
    za, zb = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    return math.ceil(((za + zb) * sd / mean) ** 2)


def compare(
    baseline_pass: Sequence[bool | None],
    variant_pass: Sequence[bool | None],
    baseline_score: Sequence[float | None] = (),
    variant_score: Sequence[float | None] = (),
    *,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Comparison:
    """Compare a variant with the baseline record by record (None = not judged: left out).

    The verdict is decided on pass/fail (McNemar) when both sides have pass/fail verdicts, else
    on the scores (Wilcoxon); ``better`` or ``worse`` when p < ``alpha``.
    """
    pairs = [
        (x, y)
        for x, y in zip(baseline_pass, variant_pass, strict=True)
        if x is not None and y is not None
    ]
    scores = [
        (x, y)
        for x, y in zip(baseline_score, variant_score, strict=True)
        if x is not None and y is not None
    ]
    n = len(pairs)
    p_value = ci = rate_diff = None
    needed: int | None = None
    verdict = NO_DIFFERENCE
    if n:
        test = mcnemar_exact([x for x, _ in pairs], [y for _, y in pairs])
        p_value = test.p_value
        b, c = test.baseline_only, test.variant_only
        rate_diff = (c - b) / n
        ci = pass_rate_ci(b, c, n)
        if p_value < alpha:
            verdict = BETTER if c > b else WORSE
        else:
            needed = needed_pairs(b, c, n, alpha, power)
    score_p = score_ci = mean_diff = None
    if scores:
        diffs = np.asarray([y - x for x, y in scores], dtype=float)
        score_p = wilcoxon_signed_rank(diffs.tolist()).p_value
        mean_diff = float(diffs.mean())
        score_ci = mean_difference_ci(diffs.tolist())
        if not n:
            if score_p < alpha:
                verdict = BETTER if mean_diff > 0 else WORSE
            else:
                needed = _needed_for_scores(diffs, alpha, power)
    return Comparison(
        pairs=n,
        pass_rate_difference=rate_diff,
        ci=ci,
        p_value=p_value,
        score_pairs=len(scores),
        mean_score_difference=mean_diff,
        score_ci=score_ci,
        score_p_value=score_p,
        verdict=verdict,
        needed_sample=needed,
    )
