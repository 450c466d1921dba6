"""The statistics of a run, as pure functions: arrays in, dataclasses out.

- ``split_alpha``: the run's false-alarm level split over its families of flags (Bonferroni
  over families, a fifth each), so a run over two windows from one distribution flags nothing with
  probability at least 1 - alpha.
- ``benjamini_hochberg``: false-discovery-rate adjusted q-values.
- ``share_changes``: per cluster, did its share of traffic change between the windows (Fisher's
  exact test, BH across clusters, a minimum effect size, a new/grew/shrank/vanished/stable label).
- ``mmd_two_sample``: one global test on the embeddings (MMD with random Fourier features and a
  permutation p-value, so its false-alarm rate is the nominal level whatever the data).
- ``hotspots``: per cluster, is the thumbs-down rate higher than in the rest (one-sided Fisher,
  BH, minimum support and lift) and an empirical-Bayes shrunken rate for ranking.
- ``compare_versions``: per template, thumbs-down and latency of each version against the
  previous one (the A/B view).

Nothing here touches the store; ``job.py`` wires these to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values (step-up, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    # q_(i) = min over j >= i of p_(j) m / j: a running minimum from the largest p down.
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return [float(v) for v in q]


@dataclass(frozen=True)
class AlphaSplit:
    """The level each family of flags of one run is tested at; they sum to the run's alpha."""

    global_drift: float  # the global two-sample test
    cluster_drift: float  # BH level of the per-cluster share changes
    hotspots: float  # BH level of the thumbs-down hotspots
    regressions: float  # BH level of the per-cluster latency, length, cost and error tests
    implicit: float  # BH level of the per-cluster rephrase-rate tests (``implicit.py``)


def split_alpha(alpha: float, *, implicit: bool = True) -> AlphaSplit:
    """Bonferroni over the families that raise flags: a fifth of ``alpha`` each.

    Under the complete null the chance that any family flags is at most the sum of the
    families' chances (the union bound), and within a family Benjamini–Hochberg at level q
    flags anything with probability at most q when every hypothesis is null (independent or
    positively dependent p-values). Equal shares: no family is known in advance to matter more.

    ``implicit`` False (a run with no record in a conversation, or whose embeddings are not of
    the prompts, so no rephrase can be seen): the implicit family tests nothing and the other
    four keep a quarter each, as before it joined. Whether it is open depends on which records
    carry a session or user, never on what they did, so the bound holds either way.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    share = alpha / (5 if implicit else 4)
    return AlphaSplit(
        global_drift=share,
        cluster_drift=share,
        hotspots=share,
        regressions=share,
        implicit=share if implicit else 0.0,
    )


# --- drift: share of each cluster, baseline vs current --------------------------------------


@dataclass(frozen=True)
class ShareChange:
    """How one cluster's share of traffic moved between the windows."""

    kind: str  # new | grew | shrank | vanished | stable
    score: float  # log2(current share / baseline share), half-count smoothed
    p_value: float
    q_value: float
    flagged: bool


def share_changes(
    baseline_counts: Sequence[int],
    current_counts: Sequence[int],
    *,
    baseline_total: int | None = None,
    current_total: int | None = None,
    fdr: float = 0.05,
    min_ratio: float = 1.5,
    min_share_change: float = 0.005,
    new_ratio: float = 10.0,
) -> list[ShareChange]:
    """Per-cluster share-change test between two windows.

    For each cluster, Fisher's exact test (two-sided) on the 2x2 table (in the cluster or not x
    baseline or current). q-values by Benjamini–Hochberg over the clusters. A cluster is
    flagged when ``q <= fdr`` and the change matters: the share moved by at least
    ``min_share_change`` (absolute) and by a factor of at least ``min_ratio``. A flagged rise is
    ``new`` when the baseline share is below ``1/new_ratio`` of the current share (``vanished``
    symmetrically), else ``grew``/``shrank``; anything not flagged is ``stable``.

    Totals default to the sums of the counts; pass them when noise records are left out of the
    clusters but still count in the windows.
    """
    base = np.asarray(baseline_counts, dtype=np.int64)
    cur = np.asarray(current_counts, dtype=np.int64)
    if base.shape != cur.shape:
        raise ValueError("baseline_counts and current_counts differ in length")
    n_base = int(base.sum()) if baseline_total is None else baseline_total
    n_cur = int(cur.sum()) if current_total is None else current_total
    if n_base == 0 or n_cur == 0:
        # One window is empty: there is nothing to compare against.
        return [ShareChange("stable", 0.0, 1.0, 1.0, False) for _ in base]

    p_values = [
        float(fisher_exact([[c, n_cur - c], [b, n_base - b]], alternative="two-sided")[1])
        for b, c in zip(base, cur, strict=True)
    ]
    q_values = benjamini_hochberg(p_values)
    return [
        share_change(
            int(b), int(c), n_base, n_cur, p, q,
            fdr=fdr, min_ratio=min_ratio, min_share_change=min_share_change, new_ratio=new_ratio,
        )
        for b, c, p, q in zip(base, cur, p_values, q_values, strict=True)
    ]  # fmt: skip


def share_change(
    b: int,
    c: int,
    n_base: int,
    n_cur: int,
    p: float,
    q: float | None,
    *,
    fdr: float = 0.05,
    min_ratio: float = 1.5,
    min_share_change: float = 0.005,
    new_ratio: float = 10.0,
) -> ShareChange:
    """One group's verdict from its counts and its (already adjusted) q-value; rules as above.

    ``q`` None: the group was not tested (its family was not opened), so never flagged.
    """
    share_b, share_c = b / n_base if n_base else 0.0, c / n_cur if n_cur else 0.0
    score = math.log2(((c + 0.5) / (n_cur + 1)) / ((b + 0.5) / (n_base + 1)))
    big_enough = abs(share_c - share_b) >= min_share_change and abs(score) >= math.log2(min_ratio)
    flagged = bool(q is not None and q <= fdr and big_enough)
    if not flagged:
        kind = "stable"
    elif share_c > share_b:
        kind = "new" if share_b * new_ratio < share_c else "grew"
    else:
        kind = "vanished" if share_c * new_ratio < share_b else "shrank"
    return ShareChange(kind, score, p, 1.0 if q is None else q, flagged)


# --- drift: one global two-sample test on the embeddings ------------------------------------


@dataclass(frozen=True)
class TwoSampleResult:
    statistic: float
    p_value: float
    flagged: bool
    method: str


def mmd_two_sample(
    x: np.ndarray,
    y: np.ndarray,
    *,
    alpha: float = 0.05,
    n_features: int = 256,
    n_permutations: int = 500,
    max_samples: int = 20_000,
    seed: int = 0,
) -> TwoSampleResult:
    """Maximum mean discrepancy with a Gaussian kernel, via random Fourier features.

    The statistic is the squared distance between the two windows' mean feature vectors. Its
    p-value comes from ``n_permutations`` random relabellings of the pooled sample, counted as
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)``: exact under exchangeability, so
    two windows from one distribution are flagged at rate ``alpha``. The bandwidth is the
    median pairwise distance of the pooled sample (label-blind, so the test stays calibrated).
    Each window is subsampled to ``max_samples`` rows to bound the cost.
    """
    rng = np.random.default_rng(seed)
    method = f"mmd-rff (gaussian, {n_features} features, {n_permutations} permutations)"
    if len(x) < 2 or len(y) < 2:
        return TwoSampleResult(0.0, 1.0, False, method)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rng.choice(len(y), max_samples, replace=False)]
    pooled = np.vstack([x, y]).astype(np.float64)
    n_x, n = len(x), len(pooled)

    probe = pooled[rng.choice(n, min(n, 1000), replace=False)]
    sq = np.sum(probe**2, axis=1)
    distances = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * probe @ probe.T, 0.0))
    bandwidth = float(np.median(distances[np.triu_indices(len(probe), k=1)])) or 1.0

    weights = rng.normal(scale=1.0 / bandwidth, size=(pooled.shape[1], n_features))
    offsets = rng.uniform(0, 2 * np.pi, size=n_features)
    features = np.sqrt(2.0 / n_features) * np.cos(pooled @ weights + offsets)

    def statistic(labels: np.ndarray) -> np.ndarray:
        # Columns of ``labels`` are relabellings; +1/n_x for x, -1/n_y for y.
        signed = np.where(labels, 1.0 / n_x, -1.0 / (n - n_x))
        diff = features.T @ signed
        statistics: np.ndarray = np.sum(diff**2, axis=0)
        return statistics

    observed_labels = np.zeros((n, 1), dtype=bool)
    observed_labels[:n_x] = True
    observed = float(statistic(observed_labels)[0])
    exceed = 0
    for start in range(0, n_permutations, 100):
        batch = min(100, n_permutations - start)
        permuted = np.zeros((n, batch), dtype=bool)
        for j in range(batch):
            permuted[rng.choice(n, n_x, replace=False), j] = True
        exceed += int(np.sum(statistic(permuted) >= observed))
    p_value = (1 + exceed) / (1 + n_permutations)
    return TwoSampleResult(observed, p_value, bool(p_value <= alpha), method)


# --- thumbs-down hotspots ---------------------------------------------------------------------


@dataclass(frozen=True)
class Hotspot:
    """One cluster's thumbs-down rate against the rest of the rated records."""

    rated: int
    down: int
    down_rate: float
    lift: float  # down rate in the cluster / down rate over all rated records
    p_value: float | None  # None: too few ratings to test
    q_value: float | None
    flagged: bool
    shrunken_rate: float  # empirical-Bayes posterior mean, for ranking


def beta_prior(rated: Sequence[int], down: Sequence[int]) -> tuple[float, float]:
    """A beta prior for per-cluster rates fitted by the method of moments across clusters.

    Falls back to a weak prior centred on the pooled rate (strength 2) when the observed
    rates vary no more than binomial noise alone would make them.
    """
    n = np.asarray(rated, dtype=float)
    k = np.asarray(down, dtype=float)
    keep = n > 0
    n, k = n[keep], k[keep]
    pooled = float(k.sum() / n.sum()) if n.sum() > 0 else 0.0
    if len(n) < 2 or pooled in (0.0, 1.0):
        return pooled * 2 + 1e-9, (1 - pooled) * 2 + 1e-9
    rates = k / n
    mean = float(np.average(rates, weights=n))
    variance = float(np.average((rates - mean) ** 2, weights=n))
    # Part of the spread is binomial noise: subtract its expected size, mean(1-mean)/n.
    noise = mean * (1 - mean) * float(np.mean(1.0 / n))
    between = variance - noise
    strength = 2.0 if between <= 0 else max(mean * (1 - mean) / between - 1, 0.001)
    return mean * strength, (1 - mean) * strength


def hotspots(
    rated: Sequence[int],
    down: Sequence[int],
    *,
    fdr: float = 0.05,
    min_rated: int = 10,
    min_lift: float = 1.5,
) -> list[Hotspot]:
    """Per cluster, is its thumbs-down rate higher than the other clusters' together?

    One-sided Fisher's exact test on (down, not down) x (this cluster, all others), for
    clusters with at least ``min_rated`` ratings; BH over those tested. Flagged when
    ``q <= fdr`` and the lift over the overall rate is at least ``min_lift``.
    """
    n = np.asarray(rated, dtype=np.int64)
    k = np.asarray(down, dtype=np.int64)
    total_n, total_k = int(n.sum()), int(k.sum())
    overall = total_k / total_n if total_n else 0.0
    a, b = beta_prior(n.tolist(), k.tolist())

    p_values: list[float | None] = []
    for n_i, k_i in zip(n, k, strict=True):
        if n_i < min_rated or total_n - n_i == 0:
            p_values.append(None)
            continue
        table = [[k_i, n_i - k_i], [total_k - k_i, (total_n - n_i) - (total_k - k_i)]]
        p_values.append(float(fisher_exact(table, alternative="greater")[1]))
    tested = [i for i, p in enumerate(p_values) if p is not None]
    q_tested = benjamini_hochberg([p_values[i] for i in tested])  # type: ignore[misc]
    q_values: list[float | None] = [None] * len(n)
    for i, q in zip(tested, q_tested, strict=True):
        q_values[i] = q

    results = []
    for i, (n_i, k_i) in enumerate(zip(n, k, strict=True)):
        rate = k_i / n_i if n_i else 0.0
        lift = rate / overall if overall > 0 else 0.0
        q_i = q_values[i]
        flagged = bool(q_i is not None and q_i <= fdr and lift >= min_lift)
        shrunk = float((k_i + a) / (n_i + a + b))
        results.append(
            Hotspot(int(n_i), int(k_i), float(rate), float(lift), p_values[i], q_i, flagged, shrunk)
        )
    return results


# --- per-template-version A/B -----------------------------------------------------------------


@dataclass(frozen=True)
class VersionSample:
    """What one template version did: its ratings and its latencies."""

    version: str
    records: int
    rated: int
    down: int
    latencies_ms: Sequence[float]


@dataclass(frozen=True)
class VersionComparison:
    """One template version against the one before it."""

    version: str
    against: str
    down_rate: float
    against_down_rate: float
    down_p_value: float | None  # two-sided Fisher; None without ratings on both sides
    latency_p50_ms: float | None
    against_latency_p50_ms: float | None
    latency_p_value: float | None  # two-sided Mann-Whitney U; None without latencies
    down_q_value: float | None
    latency_q_value: float | None


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def compare_versions(versions: Sequence[VersionSample]) -> list[VersionComparison]:
    """Each version against the previous one (in the order given): thumbs-down and latency.

    q-values are Benjamini–Hochberg over all the tests of this call, so a caller comparing
    several templates should call once per template and read q per template.
    """
    rows = []
    for prev, this in zip(versions, versions[1:], strict=False):
        down_p = None
        if this.rated and prev.rated:
            table = [[this.down, this.rated - this.down], [prev.down, prev.rated - prev.down]]
            down_p = float(fisher_exact(table, alternative="two-sided")[1])
        latency_p = None
        if len(this.latencies_ms) and len(prev.latencies_ms):
            latency_p = float(
                mannwhitneyu(this.latencies_ms, prev.latencies_ms, alternative="two-sided").pvalue
            )
        rows.append((prev, this, down_p, latency_p))

    tests = [p for _, _, d, lat in rows for p in (d, lat) if p is not None]
    q_iter = iter(benjamini_hochberg(tests))
    results = []
    for prev, this, down_p, latency_p in rows:
        down_q = next(q_iter) if down_p is not None else None
        latency_q = next(q_iter) if latency_p is not None else None
        results.append(
            VersionComparison(
                version=this.version,
                against=prev.version,
                down_rate=this.down / this.rated if this.rated else 0.0,
                against_down_rate=prev.down / prev.rated if prev.rated else 0.0,
                down_p_value=down_p,
                latency_p50_ms=_median(this.latencies_ms),
                against_latency_p50_ms=_median(prev.latencies_ms),
                latency_p_value=latency_p,
                down_q_value=down_q,
                latency_q_value=latency_q,
            )
        )
    return results
