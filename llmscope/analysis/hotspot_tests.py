"""The thumbs-down tests of one group (a cluster, a tree node, the novel group).

Each record contributes a row of counts (``count_rows``: in which window, rated, thumbs-down);
a group's row is the sum of its records' (``group_sums``). On such a row, ``HotspotTests`` runs
the two tests of the hotspot family: *persistent* (the group's thumbs-down rate over every rated
record of both windows against all others) and *emerging* (its current-window rate against its
own baseline rate, and it must stand out now), with the minimum support and lift of the settings;
``hotspot_verdict`` turns both into what the report shows. Which groups are tested, and at which
level, is decided in ``verdicts.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import fisher_exact

from llmscope.analysis.hierarchy import excess_p_values
from llmscope.config import Settings

# Per-record count columns, summed per cluster and per tree node.
BASE, CUR, RATED_B, DOWN_B, RATED_C, DOWN_C = range(6)


@dataclass(frozen=True)
class KindResult:
    """One thumbs-down test (persistent or emerging) of one group."""

    rated: int  # ratings the test used
    down: int
    effect: float  # persistent: lift over all rated; emerging: rise over the baseline rate
    p_value: float | None  # None: too few ratings
    q_value: float | None
    flagged: bool


UNTESTED = KindResult(0, 0, 0.0, None, None, False)


@dataclass(frozen=True)
class HotspotVerdict:
    """A group's thumbs-down verdict; ``rated``/``down``/``lift`` describe the current window."""

    kind: str | None  # emerging | persistent | None (not flagged)
    rated: int
    down: int
    down_rate: float
    lift: float  # current-window rate / current-window overall rate
    p_value: float | None  # of the kind shown (the flagged one, else the smaller q)
    q_value: float | None
    flagged: bool
    shrunken_rate: float
    persistent: KindResult = UNTESTED
    emerging: KindResult = UNTESTED
    level: str = "cluster"  # cluster | parent (too few ratings: tested with its neighbours)


def count_rows(is_current: np.ndarray, down: Sequence[bool | None]) -> np.ndarray:
    rated = np.array([d is not None for d in down], dtype=bool)
    is_down = np.array([bool(d) for d in down], dtype=bool)
    cur = is_current.astype(bool)
    cols = [~cur, cur, rated & ~cur, rated & is_down & ~cur, rated & cur, rated & is_down & cur]
    return np.column_stack(cols).astype(np.int64)


def group_sums(keys: np.ndarray, rows: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros((n_groups, rows.shape[1]), dtype=np.int64)
    ok = keys >= 0
    np.add.at(out, keys[ok], rows[ok])
    return out


def fisher_two_sided(b: int, c: int, n_base: int, n_cur: int) -> float:
    table = [[c, n_cur - c], [b, n_base - b]]
    return float(fisher_exact(table, alternative="two-sided")[1])


class HotspotTests:
    """The persistent and emerging tests on any group's count row."""

    def __init__(self, totals: np.ndarray, settings: Settings) -> None:
        self.rated_all = int(totals[RATED_B] + totals[RATED_C])
        self.down_all = int(totals[DOWN_B] + totals[DOWN_C])
        self.rated_cur, self.down_cur = int(totals[RATED_C]), int(totals[DOWN_C])
        self.min_rated = settings.hotspot_min_rated
        self.min_lift = settings.hotspot_min_lift

    def supported(self, row: np.ndarray, kind: str) -> bool:
        if kind == "persistent":
            return bool(row[RATED_B] + row[RATED_C] >= self.min_rated)
        half = math.ceil(self.min_rated / 2)
        return bool(row[RATED_B] >= half and row[RATED_C] >= half)

    def p_values(self, rows: np.ndarray, kind: str) -> np.ndarray:
        rows = np.atleast_2d(rows)
        if kind == "persistent":
            return excess_p_values(
                rows[:, DOWN_B] + rows[:, DOWN_C],
                rows[:, RATED_B] + rows[:, RATED_C],
                self.down_all,
                self.rated_all,
            )
        # Within the group: are its current-window thumbs-down more than its baseline's share?
        return excess_p_values(
            rows[:, DOWN_C],
            rows[:, RATED_C],
            rows[:, DOWN_B] + rows[:, DOWN_C],
            rows[:, RATED_B] + rows[:, RATED_C],
        )

    def effect(self, row: np.ndarray, kind: str) -> float:
        if kind == "persistent":
            n, k = row[RATED_B] + row[RATED_C], row[DOWN_B] + row[DOWN_C]
            overall = self.down_all / self.rated_all if self.rated_all else 0.0
            return float(k / n / overall) if n and overall > 0 else 0.0
        rate_now = (row[DOWN_C] + 0.5) / (row[RATED_C] + 1)
        return float(rate_now / ((row[DOWN_B] + 0.5) / (row[RATED_B] + 1)))

    def result(
        self, row: np.ndarray, kind: str, p: float | None, q: float | None, level: float
    ) -> KindResult:
        rated = int(row[RATED_B] + row[RATED_C]) if kind == "persistent" else int(row[RATED_C])
        down = int(row[DOWN_B] + row[DOWN_C]) if kind == "persistent" else int(row[DOWN_C])
        effect = self.effect(row, kind)
        big = effect >= self.min_lift
        if kind == "emerging":
            # It must also stand out now, not only rise with everything else.
            overall_now = self.down_cur / self.rated_cur if self.rated_cur else 0.0
            big = big and row[RATED_C] > 0 and row[DOWN_C] / row[RATED_C] > overall_now
        flagged = bool(q is not None and q <= level and big)
        return KindResult(rated, down, effect, p, q, flagged)


def hotspot_verdict(
    row: np.ndarray, spots: HotspotTests, results: dict[str, KindResult], shrunk: float, level: str
) -> HotspotVerdict:
    rated, down = int(row[RATED_C]), int(row[DOWN_C])
    rate = down / rated if rated else 0.0
    overall = spots.down_cur / spots.rated_cur if spots.rated_cur else 0.0
    persistent, emerging = results["persistent"], results["emerging"]
    kind = "emerging" if emerging.flagged else "persistent" if persistent.flagged else None
    shown = {"emerging": emerging, "persistent": persistent}.get(kind or "")
    if shown is None:
        tested = [r for r in (persistent, emerging) if r.q_value is not None]
        shown = min(tested, key=lambda r: r.q_value or 1.0) if tested else persistent
    return HotspotVerdict(
        kind=kind,
        rated=rated,
        down=down,
        down_rate=float(rate),
        lift=float(rate / overall) if overall > 0 else 0.0,
        p_value=shown.p_value,
        q_value=shown.q_value,
        flagged=kind is not None,
        shrunken_rate=shrunk,
        persistent=persistent,
        emerging=emerging,
        level=level,
    )
