"""Evaluations in a run: each evaluator's failures per cluster, and the judge against the users.

Pure functions on arrays, like ``stats.py``:

- :func:`cohens_kappa`: agreement of the evaluator's pass/fail with the users' thumbs (up =
  pass, down = fail) on records that have both: Cohen's kappa with a 95% confidence interval from
  the large-sample variance of Fleiss, Cohen and Everitt (1969), and the confusion table.
- :func:`hotspot_levels`: the evaluators' failure hotspots are hotspots too (an outcome worse in
  a cluster than elsewhere), so they live inside the hotspot family's share of the run's alpha
  (a fifth of ``LLMSCOPE_DRIFT_ALPHA``, a quarter in a run without conversations): when a run
  has evaluations, that share is split in halves (Bonferroni) between the thumbs-down tests
  (``verdicts.window_tests``) and the evaluators' tests; without evaluations the thumbs keep
  the whole share, exactly as before. The run as a whole still flags anything with probability
  at most alpha under the null.
- :func:`evaluation_tests`: per evaluator and cluster, ``stats.hotspots`` (one-sided Fisher's
  exact test of the cluster's current-window failures against every other evaluated record,
  minimum support and lift, empirical-Bayes shrunken rate for ranking), with one
  Benjamini-Hochberg adjustment over every evaluator's tests (:func:`joint_hotspots`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from llmscope.analysis import stats

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Agreement:
    """The evaluator's verdicts against the users' thumbs on the records that have both."""

    n: int
    kappa: float | None  # None: undefined (no records, or both raters constant and equal)
    kappa_ci: tuple[float, float] | None
    # confusion[judge][user]: judge "pass"/"fail" x user thumb "up"/"down"
    confusion: dict[str, dict[str, int]]


def cohens_kappa(judge_passed: Sequence[bool], user_up: Sequence[bool]) -> Agreement:
    """Cohen's kappa of two binary raters with a 95% CI (Fleiss-Cohen-Everitt variance)."""
    if len(judge_passed) != len(user_up):
        raise ValueError("judge_passed and user_up differ in length")
    j = np.asarray(judge_passed, dtype=bool)
    u = np.asarray(user_up, dtype=bool)
    n = int(j.size)
    table = np.array(
        [[np.sum(j & u), np.sum(j & ~u)], [np.sum(~j & u), np.sum(~j & ~u)]], dtype=float
    )
    confusion = {
        "pass": {"up": int(table[0, 0]), "down": int(table[0, 1])},
        "fail": {"up": int(table[1, 0]), "down": int(table[1, 1])},
    }
    if n == 0:
        return Agreement(0, None, None, confusion)
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    observed = float(np.trace(p))
    expected = float(rows @ cols)
    if expected >= 1.0:
        return Agreement(n, None, None, confusion)
    kappa = (observed - expected) / (1 - expected)
    spread = 0.0
    for i in range(2):
        spread += p[i, i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2
        for k in range(2):
            if k != i:
                spread += (1 - kappa) ** 2 * p[i, k] * (cols[i] + rows[k]) ** 2
    spread -= (kappa - expected * (1 - kappa)) ** 2
    se = math.sqrt(max(spread, 0.0) / (n * (1 - expected) ** 2))
    ci = (max(-1.0, kappa - Z95 * se), min(1.0, kappa + Z95 * se))
    return Agreement(n, float(kappa), ci, confusion)


def joint_hotspots(
    families: Sequence[Sequence[stats.Hotspot]], *, fdr: float, min_lift: float
) -> list[list[stats.Hotspot]]:
    """Re-adjust several lists of per-cluster hotspots (from ``stats.hotspots``) as one family.

    Each list keeps its p-values, lifts and shrunken rates; q-values come from one
    Benjamini-Hochberg over every tested p-value of every list, and ``flagged`` follows from
    them. One list alone gives back exactly what ``stats.hotspots`` gave.
    """
    tested = [
        (f, c)
        for f, spots in enumerate(families)
        for c, h in enumerate(spots)
        if h.p_value is not None
    ]
    q_values = stats.benjamini_hochberg([families[f][c].p_value for f, c in tested])  # type: ignore[misc]
    joint = {key: q for key, q in zip(tested, q_values, strict=True)}
    out = []
    for f, spots in enumerate(families):
        adjusted = []
        for c, spot in enumerate(spots):
            q = joint.get((f, c))
            flagged = bool(q is not None and q <= fdr and spot.lift >= min_lift)
            adjusted.append(replace(spot, q_value=q, flagged=flagged))
        out.append(adjusted)
    return out


def hotspot_levels(
    alpha: float, with_evaluations: bool, *, implicit: bool = True
) -> tuple[float, float]:
    """(thumbs-down level, evaluators' level) inside the hotspot family's share of ``alpha``
    (``implicit``: whether the run's implicit family is open, ``stats.split_alpha``)."""
    share = stats.split_alpha(alpha, implicit=implicit).hotspots
    return (share / 2, share / 2) if with_evaluations else (share, 0.0)


def evaluation_tests(
    labels: np.ndarray,
    n_clusters: int,
    is_current: np.ndarray,
    passed: dict[str, Sequence[bool | None]],
    thumbs: Sequence[bool | None],
    *,
    fdr: float,
    min_rated: int,
    min_lift: float,
) -> tuple[dict[str, list[stats.Hotspot]], dict[str, dict[str, Any]]]:
    """Per evaluator and cluster, failures against the rest (current window), one BH over all
    the evaluators' tests at ``fdr``; per evaluator, its totals and agreement with the users.

    ``passed[name][i]`` is record i's verdict (True pass, False fail, None not evaluated);
    ``thumbs[i]`` its latest thumb (True down, False up, None unrated).
    """
    in_cluster = labels >= 0
    bins = np.where(in_cluster, labels, 0)

    def per_cluster(mask: np.ndarray) -> list[int]:
        counts = np.bincount(bins[mask & in_cluster], minlength=n_clusters)
        return [int(v) for v in counts[:n_clusters]]

    names = sorted(passed)
    spots: dict[str, list[stats.Hotspot]] = {}
    summary: dict[str, dict[str, Any]] = {}
    down = np.array([t is True for t in thumbs], dtype=bool)
    rated = np.array([t is not None for t in thumbs], dtype=bool)
    for name in names:
        verdicts = passed[name]
        evaluated = np.array([v is not None for v in verdicts], dtype=bool)
        failed = np.array([v is False for v in verdicts], dtype=bool)
        spots[name] = stats.hotspots(
            per_cluster(evaluated & is_current),
            per_cluster(failed & is_current),
            fdr=fdr,
            min_rated=min_rated,
            min_lift=min_lift,
        )
        n_eval = int((evaluated & is_current).sum())
        n_fail = int((failed & is_current).sum())
        both = evaluated & rated  # agreement: every analysed record with both, either window
        agreement = cohens_kappa(~failed[both], ~down[both])
        summary[name] = {
            "evaluated": n_eval,
            "failed": n_fail,
            "fail_rate": n_fail / n_eval if n_eval else None,
            "agreement": {
                "n": agreement.n,
                "kappa": agreement.kappa,
                "kappa_ci": list(agreement.kappa_ci) if agreement.kappa_ci else None,
                "confusion": agreement.confusion,
            },
        }
    if not names:
        return {}, {}
    joint = joint_hotspots([spots[n] for n in names], fdr=fdr, min_lift=min_lift)
    return dict(zip(names, joint, strict=True)), summary


def template_fail_rates(
    template_of: Sequence[tuple[str, str] | None],
    passed: dict[str, Sequence[bool | None]],
    rows: Sequence[dict[str, object]],
) -> None:
    """Add each evaluator's fail rate to the template A/B rows (version against the one before),
    with a two-sided Fisher test and Benjamini-Hochberg over the run's comparisons (in place)."""
    from scipy.stats import fisher_exact

    tests: list[tuple[dict[str, object], str, float]] = []
    for row in rows:
        name, version, against = row["template"], row["version"], row["against"]
        row.setdefault("evaluations", {})
        for evaluator, verdicts in sorted(passed.items()):
            counts = {}
            for key in (version, against):
                picked = [
                    v
                    for t, v in zip(template_of, verdicts, strict=True)
                    if v is not None and t == (name, key)
                ]
                counts[key] = (len(picked), sum(not v for v in picked))
            (n_this, f_this), (n_prev, f_prev) = counts[version], counts[against]
            if not n_this and not n_prev:
                continue
            p = None
            if n_this and n_prev:
                table = [[f_this, n_this - f_this], [f_prev, n_prev - f_prev]]
                p = float(fisher_exact(table, alternative="two-sided")[1])
            entry: dict[str, object] = {
                "evaluated": n_this,
                "fail_rate": f_this / n_this if n_this else None,
                "against_evaluated": n_prev,
                "against_fail_rate": f_prev / n_prev if n_prev else None,
                "p_value": p,
                "q_value": None,
            }
            row["evaluations"][evaluator] = entry  # type: ignore[index]
            if p is not None:
                tests.append((entry, evaluator, p))
    for (tested, _, _), q in zip(
        tests, stats.benjamini_hochberg([p for _, _, p in tests]), strict=True
    ):
        tested["q_value"] = q
