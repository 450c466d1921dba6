"""Earlier decisions, kept for comparison in the benchmarks (not used by llmscope).

``previous_decision``: the decision before tree testing. Per cluster of the cut only: share change
(Fisher, BH at alpha/3), thumbs-down hotspot on the current window's ratings only (one-sided
Fisher against the rest, BH at alpha/3). No tree, no persistent/emerging split, no novel group.
Built from the public functions of ``stats``.

``bonferroni_gate``: the tree procedure's first version, which combined a unit's own test and
the Simes p-value of its nodes into one gate ``2 * min(own, simes)`` and flagged the own test
when ``2 * own`` passed BH over the units (``hierarchy.py`` now lists both in one BH).
``window_tests`` runs with it inside ``with bonferroni_gate():``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from llmscope.analysis import stats, verdicts
from llmscope.analysis.hierarchy import Decision, Unit, simes
from llmscope.config import Settings


def previous_decision(
    labels: np.ndarray, n_clusters: int, is_current: np.ndarray, down: Sequence[bool | None],
    settings: Settings,
) -> tuple[list[stats.ShareChange], list[stats.Hotspot]]:  # fmt: skip
    """Per cluster: (share change, hotspot), as ``pipeline.window_tests`` decided them before."""
    third = settings.drift_alpha / 3  # the three families of that time

    def per_cluster(mask: np.ndarray) -> list[int]:
        ok = mask & (labels >= 0)
        return np.bincount(labels[ok], minlength=n_clusters)[:n_clusters].tolist()

    drift = stats.share_changes(
        per_cluster(~is_current), per_cluster(is_current),
        baseline_total=int((~is_current).sum()), current_total=int(is_current.sum()),
        fdr=third, min_ratio=settings.drift_min_ratio,
        min_share_change=settings.drift_min_share_change,
    )  # fmt: skip
    rated = np.array([d is not None for d in down]) & is_current
    is_down = np.array([bool(d) for d in down])
    spots = stats.hotspots(
        per_cluster(rated), per_cluster(rated & is_down), fdr=third,
        min_rated=settings.hotspot_min_rated, min_lift=settings.hotspot_min_lift,
    )  # fmt: skip
    return drift, spots


def _gate_bh(units: Sequence[Unit], q: float) -> Decision:
    """The first tree procedure: BH over Bonferroni gates, own tests weighted by 2."""
    gates = [
        None if u.own is None and not u.below
        else u.own if not u.below
        else simes(u.below) if u.own is None
        else min(1.0, 2 * min(u.own, simes(u.below)))
        for u in units
    ]  # fmt: skip
    tested = [i for i, g in enumerate(gates) if g is not None]
    gate_q: list[float | None] = [None] * len(units)
    own_q: list[float | None] = [None] * len(units)
    below_q: list[list[float] | None] = [None] * len(units)
    for i, value in zip(tested, stats.benjamini_hochberg([gates[i] for i in tested]), strict=True):
        gate_q[i] = value
        if value <= q and units[i].below:
            below_q[i] = stats.benjamini_hochberg(units[i].below)
    weighted = [
        1.0 if (own := units[i].own) is None else min(1.0, (2 if units[i].below else 1) * own)
        for i in tested
    ]
    for i, value in zip(tested, stats.benjamini_hochberg(weighted), strict=True):
        own_q[i] = value if units[i].own is not None else None
    return Decision(gate_q, own_q, below_q)


@contextmanager
def bonferroni_gate() -> Iterator[None]:
    """``verdicts.window_tests`` with the first tree procedure, for a same-run comparison."""
    now = verdicts.hierarchical_bh
    verdicts.hierarchical_bh = _gate_bh
    try:
        yield
    finally:
        verdicts.hierarchical_bh = now
