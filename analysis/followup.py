"""What happens to a stored run afterwards: match its clusters, summarise them, raise alerts.

The order matters: matching gives clusters the stable keys the alert cooldown is keyed by, and
summaries give alerts a readable cluster title. Each step commits on its own and a failing step
is logged and skipped, so the run (already committed by the job) is never lost or failed by
what comes after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from llmscope.analysis.alerts import raise_alerts
from llmscope.analysis.matching import match_clusters
from llmscope.analysis.summaries import summarize_run
from llmscope.config import Settings

__all__ = ["finish_run"]

log = logging.getLogger("llmscope.analysis.followup")


def finish_run(session: Session, run_id: str, settings: Settings) -> list[str]:
    """Run the follow-up steps on the committed run ``run_id``; returns the steps that failed."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("matching", lambda: match_clusters(session, run_id, settings.cluster_match_threshold)),
        ("summaries", lambda: summarize_run(session, run_id, settings)),
        ("alerts", lambda: raise_alerts(session, run_id, settings)),
    ]
    failed: list[str] = []
    for name, step in steps:
        try:
            step()
            session.commit()
        except Exception:
            # A bug or an unreachable store in one step must not take the stored run with it.
            session.rollback()
            log.exception("run follow-up failed step=%s run=%s", name, run_id)
            failed.append(name)
    return failed
