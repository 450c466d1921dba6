"""Reads every part shares, so each rule is written once: which run is "the latest".

**The latest run** is the one created last; runs created at the same moment are ordered by id
(``NEWEST_RUN_FIRST``), so "latest" names one run on every backend, every time.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from llmscope.db.models import AnalysisRun
from llmscope.report import RunReport

__all__ = [
    "LATEST",
    "NEWEST_RUN_FIRST",
    "load_run_report",
    "pick_run",
    "resolve_run_id",
]

LATEST = "latest"
NEWEST_RUN_FIRST = (AnalysisRun.created_at.desc(), AnalysisRun.id.desc())

_S = TypeVar("_S", bound=Select[Any])


def pick_run(stmt: _S, run_id: str | None = None) -> _S:
    """``stmt`` (a select over ``analysis_runs``) narrowed to the run ``run_id``, or to the
    newest run when ``run_id`` is None or ``"latest"``."""
    if run_id is None or run_id == LATEST:
        return stmt.order_by(*NEWEST_RUN_FIRST).limit(1)
    return stmt.where(AnalysisRun.id == run_id)


def resolve_run_id(session: Session, run_id: str | None = None) -> str | None:
    """The id of the run ``run_id`` (None or ``"latest"``: the newest); None if there is none."""
    return session.scalars(pick_run(select(AnalysisRun.id), run_id)).first()


def load_run_report(session: Session, run_id: str | None = None) -> RunReport | None:
    """The stored report of the run ``run_id`` (None or ``"latest"``: the newest run), typed;
    None when there is no such run."""
    stored = session.scalars(pick_run(select(AnalysisRun.report), run_id)).first()
    return None if stored is None else RunReport.from_stored(stored)
