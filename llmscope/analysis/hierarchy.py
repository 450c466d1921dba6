"""Testing a tree of hypotheses inside one family's level: a two-stage hierarchical BH.

A family (drift, or thumbs-down hotspots) has *units*, the hypotheses of the cut (one per
cluster, plus the ``novel`` group for drift), and below each unit the hypotheses of the tree
nodes under it. The procedure (after Yekutieli 2008, "Hierarchical false discovery rate-
controlling methodology"):

1. **Top family.** Each unit puts up to two hypotheses into one Benjamini–Hochberg at level
   ``q``: its *own* (p-value ``own``) and *below*, the intersection of the hypotheses of its
   nodes ("nothing changed anywhere under it"), with the Simes combination of ``below`` as its
   p-value. A unit's own hypothesis is flagged when its entry is rejected.
2. **Below.** Inside each unit whose *below* entry is rejected, Benjamini–Hochberg at level
   ``q`` over its nodes.

Why the report's bound holds: if no hypothesis of the family is false (the null of a false
alarm), every entry of the top family is a valid p-value (a test's own, or Simes' combination
of valid p-values), so the top BH rejects anything with probability at most ``q`` (BH under
the complete null is a Simes test). Step 2 flags only inside units the top family rejected.
So the family flags anything with probability at most ``q``, exactly as one BH over the cut
did, and the union bound over the families (``stats.split_alpha``) keeps the whole report at
``alpha``. With some hypotheses false, the top BH bounds the expected share of false flags
among its entries by ``q`` and Yekutieli's theorem bounds it over the whole tree by about
``2 q`` times the mean family size ratio; what the report promises is the null bound.
Simes and BH are exact for independent and for positively dependent p-values; nested tree
nodes share records and move together, which is the positive case. The calibration benchmark
and ``tests/analysis/test_calibration.py`` check the bound on real and synthetic nulls.

The earlier version of step 1 combined a unit's two parts into one gate, ``2 * min(own,
simes(below))`` (Bonferroni), and flagged ``own`` when ``2 * own`` passed BH over the units:
every unit with nodes below paid a factor 2 on its own test. Listing both parts in the BH
instead costs at most that (the family grows by the units with nodes below, at most twice its
size) and less when both parts carry the effect, as for a hot intent that is a cluster of its
own, whose fragments below are hot too: both entries are discoveries and raise each other's
rank. Both are the same kind of procedure (BH over valid p-values), so the bound's argument is
unchanged.

Also here: vectorised hypergeometric p-values for the many tree nodes (``scipy``'s
``fisher_exact`` takes ~9 ms on a 100,000-record table; ~800 nodes would cost seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import hypergeom

from llmscope.analysis.stats import benjamini_hochberg


def simes(p_values: Sequence[float]) -> float:
    """Simes' combined p-value for "every hypothesis is null": ``min_j m p_(j) / j``."""
    p = np.sort(np.asarray(p_values, dtype=float))
    if p.size == 0:
        return 1.0
    return float(min(1.0, np.min(p * p.size / np.arange(1, p.size + 1))))


@dataclass(frozen=True)
class Unit:
    """One hypothesis of the cut and the tested nodes below it (``own`` None: not tested)."""

    own: float | None
    below: Sequence[float] = ()


@dataclass(frozen=True)
class Decision:
    """The procedure's q-values: compare any of them with the family's level."""

    gate_q: list[float | None]  # per unit: the smaller q of its top entries (None: none)
    own_q: list[float | None]  # per unit: BH q-value of its own entry in the top family
    below_q: list[list[float] | None]  # per unit: BH q-values inside it (None: not opened)


def top_entries(units: Sequence[Unit]) -> list[tuple[int, bool, float]]:
    """The top family of step 1: ``(unit, is_own, p)``, own before below within a unit."""
    out: list[tuple[int, bool, float]] = []
    for i, unit in enumerate(units):
        if unit.own is not None:
            out.append((i, True, unit.own))
        if unit.below:
            out.append((i, False, simes(unit.below)))
    return out


def hierarchical_bh(units: Sequence[Unit], q: float) -> Decision:
    """Run both steps at level ``q``; see the module docstring."""
    entries = top_entries(units)
    gate_q: list[float | None] = [None] * len(units)
    own_q: list[float | None] = [None] * len(units)
    below_q: list[list[float] | None] = [None] * len(units)
    for (i, is_own, _), value in zip(
        entries, benjamini_hochberg([p for _, _, p in entries]), strict=True
    ):
        gate_q[i] = value if gate_q[i] is None else min(value, gate_q[i])  # type: ignore[type-var]
        if is_own:
            own_q[i] = value
        elif value <= q:
            below_q[i] = benjamini_hochberg(units[i].below)
    return Decision(gate_q, own_q, below_q)


# --- vectorised p-values for many nodes -----------------------------------------------------


def share_p_values(
    baseline: np.ndarray, current: np.ndarray, n_baseline: int, n_current: int
) -> np.ndarray:
    """Two-sided p-values of "this node's share is the same in both windows", per node.

    Conditional on the node's size, its current-window count is hypergeometric under the null
    (Fisher's exact test); two-sided by doubling the smaller tail (capped at 1), a standard
    and slightly conservative alternative to summing the less likely tables.
    """
    size = np.asarray(baseline) + np.asarray(current)
    total = n_baseline + n_current
    k = np.asarray(current)
    upper = hypergeom.sf(k - 1, total, n_current, size)
    lower = hypergeom.cdf(k, total, n_current, size)
    two_sided: np.ndarray = np.minimum(1.0, 2 * np.minimum(upper, lower))
    return two_sided


def excess_p_values(down: np.ndarray, rated: np.ndarray, total_down: int, total: int) -> np.ndarray:
    """One-sided p-values of "no more thumbs-down here than elsewhere" (Fisher, greater)."""
    k = np.asarray(down)
    return np.asarray(hypergeom.sf(k - 1, total, total_down, np.asarray(rated)), dtype=float)
