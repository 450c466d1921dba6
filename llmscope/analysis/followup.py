"""What happens to a stored run afterwards: match its clusters, summarise them, raise alerts.

The order matters: matching gives clusters the stable keys the alert cooldown is keyed by, and
summaries give alerts a readable cluster title. Summaries and alerts fill the typed report in
memory; it is written once, after the last step. Each step commits its own rows and a failing
step is logged and skipped, so the run (already committed by the job) is never lost or failed
by what comes after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from llmscope.analysis.alerts import raise_report_alerts
from llmscope.analysis.findings import build_findings
from llmscope.analysis.matching import match_clusters
from llmscope.analysis.report import save_report
from llmscope.analysis.summaries import summarize_report
from llmscope.config import Settings
from llmscope.db.queries import load_run_report
from llmscope.report import RunReport

__all__ = ["finish_run"]

log = logging.getLogger("llmscope.analysis.followup")


def finish_run(
    session: Session, run_id: str, settings: Settings, report: RunReport | None = None
) -> list[str]:
    """Run the follow-up steps on the committed run ``run_id`` (whose report is ``report``, or
    the stored one) and store the report they filled in; returns the steps that failed."""
    failed: list[str] = []

    def attempt(name: str, step: Callable[[], object]) -> bool:
        try:
            step()
            session.commit()
            return True
        except Exception:
            # A bug or an unreachable store in one step must not take the stored run with it.
            session.rollback()
            log.exception("run follow-up failed step=%s run=%s", name, run_id)
            failed.append(name)
            return False

    attempt("matching", lambda: match_clusters(session, run_id, settings.cluster_match_threshold))
    if report is None:
        try:
            report = load_run_report(session, run_id)
        except Exception:
            log.exception("run follow-up cannot read the report run=%s", run_id)
        if report is None:
            # Summaries and alerts are written into the report: without one, neither can run.
            failed += ["summaries", "alerts"]
            return failed
    filled = report
    changed = attempt("summaries", lambda: summarize_report(session, filled, settings))
    if changed:
        # The findings' messages name the clusters by their new titles.
        filled.findings = build_findings(filled)
    changed = attempt("alerts", lambda: raise_report_alerts(session, filled, settings)) or changed
    if changed:
        attempt("report", lambda: save_report(session, filled))
    return failed
