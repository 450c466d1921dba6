"""Per-call regressions of a cluster: its baseline calls against its current calls, tested.

Four metrics per cluster, each with a test suited to how the metric is distributed:

- ``latency_ms`` and ``output_tokens``: the **median**, tested by the Brown-Mood median test.
  Per-call latencies are right-skewed with a long tail (retries, timeouts, a cold model) and
  token counts are integers with many ties; the median is what a user's typical call feels, and
  the report shows medians. The test splits the pooled calls at the pooled median (above it or
  not) and runs Fisher's exact test (two-sided) on the 2x2 table window x side. Conditional on
  the pooled values the count above the median in each window is hypergeometric when both
  windows draw from one distribution, whatever its shape and however many ties it has, so the
  p-value is exact under the run's null (valid at any sample size) and its size is set by the
  median's move, not by a few slow outliers. Mann-Whitney was not chosen: it tests whether one
  window's calls tend to be larger, which a change in the tail alone makes significant while
  the median the report shows stays put; a permutation test of the median is exact too, but
  its p-value cannot go below 1/(permutations+1), too coarse for a Benjamini-Hochberg family
  of a hundred tests.
- ``cost_usd``: the **mean** per priced call (a budget adds costs up, so the mean is what a
  bill feels), tested by Welch's t-test (two-sided, unequal variances). Costs per call take a
  few values per model times the tokens, so with at least ``MIN_CALLS`` priced calls a window
  the mean is near normal; Welch's test keeps its level when one window is larger and more
  spread. The null calibration (``tests/analysis/test_calibration.py``) draws skewed costs.
- ``error_rate``: the **share** of calls with status ``error``, Fisher's exact test (two-sided)
  on errors x window: exact under the null.

A metric is tested when each window has at least ``MIN_CALLS`` calls with a value; the tests
of every cluster and metric form one family of the run's alpha (``stats.split_alpha``), adjusted
by Benjamini-Hochberg. A test is flagged when its q-value is within the family's level and the
change is large enough to matter: latency and cost must rise by ``min_ratio`` (a fall is no
regression), output length must move by ``min_ratio`` either way (shorter answers can be cut
off answers), the error rate must rise by ``min_error_rise`` (absolute) and by ``min_ratio``
unless the baseline had no errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import fisher_exact
from scipy.stats import t as student_t

from llmscope.analysis import stats

__all__ = [
    "METRICS",
    "MIN_CALLS",
    "CallMetrics",
    "RegressionResult",
    "cost_test",
    "error_test",
    "median_test",
    "regression_tests",
]

METRICS = ("latency_ms", "output_tokens", "cost_usd", "error_rate")
MIN_CALLS = 10  # per window, calls with a value, for a metric to be tested
MEDIAN_METHOD = "brown-mood median test (fisher exact, two-sided)"
MEAN_METHOD = "welch t-test (two-sided)"
PROPORTION_METHOD = "fisher exact (two-sided)"


@dataclass(frozen=True)
class CallMetrics:
    """Per record, the values the regression tests read (NaN: the record has none)."""

    latency_ms: np.ndarray
    output_tokens: np.ndarray
    cost_usd: np.ndarray
    error: np.ndarray  # 1.0: status error, 0.0: any other status

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> CallMetrics:
        def column(key: str) -> np.ndarray:
            return np.array(
                [np.nan if r.get(key) is None else float(r[key]) for r in records], dtype=float
            )

        return cls(
            latency_ms=column("latency_ms"),
            output_tokens=column("output_tokens"),
            cost_usd=column("cost_usd"),
            error=np.array([r.get("status") == "error" for r in records], dtype=float),
        )

    def values(self, metric: str) -> np.ndarray:
        return self.error if metric == "error_rate" else getattr(self, metric)


@dataclass(frozen=True)
class RegressionResult:
    """One metric of one cluster, baseline window against current window."""

    baseline: float | None  # median, mean or rate (None: no values in the window)
    current: float | None
    ratio: float | None  # current / baseline; None when the baseline is 0 or missing
    p_value: float | None  # None: too few calls to test
    q_value: float | None
    flagged: bool
    baseline_calls: int
    current_calls: int
    method: str


def median_test(baseline: np.ndarray, current: np.ndarray) -> float:
    """Brown-Mood: Fisher's exact test (two-sided) on window x (above the pooled median)."""
    pooled_median = float(np.median(np.concatenate([baseline, current])))
    above_b = int(np.sum(baseline > pooled_median))
    above_c = int(np.sum(current > pooled_median))
    table = [[above_c, len(current) - above_c], [above_b, len(baseline) - above_b]]
    return float(fisher_exact(table, alternative="two-sided")[1])


def cost_test(baseline: np.ndarray, current: np.ndarray) -> float:
    """Welch's t-test (two-sided) of the means; constant windows compare exactly."""
    diff = float(np.mean(current) - np.mean(baseline))

    def spread(x: np.ndarray) -> float:  # the mean's variance; exactly 0 for a constant window
        return float(np.var(x, ddof=1)) / len(x) if np.ptp(x) > 0 else 0.0

    v_b, v_c = spread(baseline), spread(current)
    if v_b + v_c == 0:
        # Both windows constant (one price, or nothing priced above 0): no noise to weigh.
        return 1.0 if diff == 0 else 0.0
    # Welch-Satterthwaite degrees of freedom.
    df = (v_b + v_c) ** 2 / (v_b**2 / (len(baseline) - 1) + v_c**2 / (len(current) - 1))
    return float(2 * student_t.sf(abs(diff) / math.sqrt(v_b + v_c), df))


def error_test(baseline: np.ndarray, current: np.ndarray) -> float:
    """Fisher's exact test (two-sided) on errors x window."""
    e_b, e_c = int(baseline.sum()), int(current.sum())
    table = [[e_c, len(current) - e_c], [e_b, len(baseline) - e_b]]
    return float(fisher_exact(table, alternative="two-sided")[1])


Test = Callable[[np.ndarray, np.ndarray], float]
Summary = Callable[[np.ndarray], Any]
# metric -> (its test, the figure the report shows per window, the test's name)
_TESTS: dict[str, tuple[Test, Summary, str]] = {
    "latency_ms": (median_test, np.median, MEDIAN_METHOD),
    "output_tokens": (median_test, np.median, MEDIAN_METHOD),
    "cost_usd": (cost_test, np.mean, MEAN_METHOD),
    "error_rate": (error_test, np.mean, PROPORTION_METHOD),
}


def _big_enough(
    metric: str, base: float, cur: float, ratio: float | None, min_ratio: float, min_rise: float
) -> bool:
    if metric == "error_rate":
        return cur - base >= min_rise and (base == 0 or (ratio or 0.0) >= min_ratio)
    if ratio is None:  # a baseline of 0: any rise is unbounded, a fall is impossible
        return metric != "output_tokens" or cur > 0
    if metric == "output_tokens":
        return ratio >= min_ratio or ratio <= 1 / min_ratio
    return ratio >= min_ratio


def regression_tests(
    labels: np.ndarray,
    n_clusters: int,
    is_current: np.ndarray,
    calls: CallMetrics,
    *,
    fdr: float,
    min_ratio: float,
    min_error_rise: float,
) -> list[dict[str, RegressionResult]]:
    """Per cluster (``labels[i]`` is record i's, -1 none), each metric of :data:`METRICS`:
    the windows' figures, the test's p-value, the q-value over every test of the call
    (Benjamini-Hochberg) and the flag (q within ``fdr`` and the change large enough)."""
    labels = np.asarray(labels)
    rows: list[tuple[int, str, np.ndarray, np.ndarray, float | None]] = []
    for c in range(n_clusters):
        in_cluster = labels == c
        for metric in METRICS:
            values = calls.values(metric)
            has = in_cluster & ~np.isnan(values)
            base, cur = values[has & ~is_current], values[has & is_current]
            test = _TESTS[metric][0]
            tested = len(base) >= MIN_CALLS and len(cur) >= MIN_CALLS
            p = test(base, cur) if tested else None
            rows.append((c, metric, base, cur, None if p is None or math.isnan(p) else p))
    tested_p = [p for *_, p in rows if p is not None]
    q_iter = iter(stats.benjamini_hochberg(tested_p))
    out: list[dict[str, RegressionResult]] = [{} for _ in range(n_clusters)]
    for c, metric, base, cur, p in rows:
        q = next(q_iter) if p is not None else None
        summary = _TESTS[metric][1]
        b = float(summary(base)) if len(base) else None
        k = float(summary(cur)) if len(cur) else None
        ratio = k / b if b and k is not None else None
        flagged = bool(
            q is not None
            and q <= fdr
            and b is not None
            and k is not None
            and _big_enough(metric, b, k, ratio, min_ratio, min_error_rise)
        )
        out[c][metric] = RegressionResult(
            baseline=b,
            current=k,
            ratio=ratio,
            p_value=p,
            q_value=q,
            flagged=flagged,
            baseline_calls=len(base),
            current_calls=len(cur),
            method=_TESTS[metric][2],
        )
    return out
