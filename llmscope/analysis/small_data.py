"""Small data said plainly: what a run over too few records reports, and when there is no run.

- **Both windows empty** (no analysable record): there is nothing to analyse. :class:`EmptyWindows`
  is raised before anything heavy is loaded; ``llmscope analyze`` prints its one line and exits 1,
  the worker records the turn as ``skipped``, and no run is stored.
- **A window empty or smaller than** :data:`MIN_TESTED_RECORDS`: the run is stored, but drift
  (each cluster's, the novel group's and the global test) was not tested: its verdicts say
  ``not tested`` with null score, p and q, never ``stable``, so no alert fires on them. A
  baseline of 3 records cannot show that a topic is new any more than an empty one can.
- **Too few records to split**: fewer distinct texts than two clusters of
  ``LLMSCOPE_CLUSTER_MIN_SIZE`` need; every record is in one cluster, and the run says so.

Each case adds a sentence to the report's ``warnings`` (omitted when empty), which the CLI
prints and the dashboard shows on the run.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from llmscope.analysis.windows import Window
from llmscope.db.models import Record
from llmscope.report import Drift, GlobalDrift, RunReport, utc_iso

__all__ = [
    "MIN_TESTED_RECORDS",
    "NOT_TESTED",
    "EmptyWindows",
    "drift_testable",
    "mark_untested",
    "require_records",
    "run_warnings",
    "window_records",
]

# A window with fewer analysable records than this is not tested for drift.
MIN_TESTED_RECORDS = 10
NOT_TESTED: Final = "not tested"


class EmptyWindows(Exception):
    """Neither window holds a record to analyse: no run is made."""

    def __init__(self, baseline: Window, current: Window) -> None:
        super().__init__(
            f"nothing to analyse: the baseline window {_span(baseline)} and the current window "
            f"{_span(current)} hold no records (no run stored)"
        )


def _span(window: Window) -> str:
    return f"{utc_iso(window.start)} → {utc_iso(window.end)}"


def window_records(session: Session, baseline: Window, current: Window) -> int:
    """How many non-internal records the two windows hold (one cheap COUNT)."""
    in_window = [
        (Record.timestamp >= w.start) & (Record.timestamp < w.end) for w in (baseline, current)
    ]
    query = select(func.count()).where(Record.internal.is_(False), or_(*in_window))
    return int(session.scalar(query) or 0)


def require_records(n_baseline: int, n_current: int, baseline: Window, current: Window) -> None:
    """Raise :class:`EmptyWindows` when both windows are empty."""
    if n_baseline == 0 and n_current == 0:
        raise EmptyWindows(baseline, current)


def drift_testable(n_baseline: int, n_current: int) -> bool:
    """Whether both windows hold enough records for the drift tests to mean something."""
    return min(n_baseline, n_current) >= MIN_TESTED_RECORDS


def run_warnings(
    baseline: Window,
    current: Window,
    n_baseline: int,
    n_current: int,
    *,
    distinct_texts: int,
    min_size: int,
) -> list[str]:
    """The report's ``warnings``: one sentence per thing the data were too few to show."""
    out = []
    for name, window, n in (("baseline", baseline, n_baseline), ("current", current, n_current)):
        if n < MIN_TESTED_RECORDS:
            fewer = "" if n == 0 else f" (fewer than {MIN_TESTED_RECORDS})"
            out.append(
                f"the {name} window {_span(window)} has {n} record{'s' if n != 1 else ''}"
                f"{fewer}: drift was not tested"
            )
    if 0 < distinct_texts < 2 * min_size:
        out.append(
            f"only {distinct_texts} distinct text{'s' if distinct_texts != 1 else ''}: too few "
            f"to split into clusters of at least {min_size} (LLMSCOPE_CLUSTER_MIN_SIZE), so "
            "every record is in one cluster"
        )
    return out


def _untested() -> Drift:
    return Drift(kind=NOT_TESTED, score=None, p_value=None, q_value=None, flagged=False)


def mark_untested(report: RunReport) -> None:
    """Turn every drift verdict of ``report`` into ``not tested`` (a window too small)."""
    report.global_drift = GlobalDrift(
        statistic=None, p_value=None, flagged=False, method=NOT_TESTED
    )
    for entry in report.clusters:
        entry.drift = _untested()
    if report.novel is not None and report.novel.drift is not None:
        report.novel.drift = _untested()
