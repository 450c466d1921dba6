"""Alerts: which findings of a run deserve a person's attention, and getting them delivered.

An alert is a finding of the run (``RunReport.findings``, built by ``findings.py`` from the
report's ``flagged`` verdicts, so an alert is exactly as trustworthy as the statistics behind
it) whose kind is a rule that is on (all by default, ``Settings.alert_rules``); alerts go out in
the findings' order, most severe first:

- ``drift``: a cluster's share change is flagged (grew, shrank or vanished);
- ``new_cluster``: a cluster flagged with drift kind ``new``;
- ``hotspot``: a cluster flagged as a thumbs-down hotspot;
- ``eval_hotspot``: a cluster flagged as a failure hotspot of one or more evaluators (one alert
  per cluster, naming each evaluator);
- ``regression``: a cluster's median latency, median output length, mean cost per call or
  error rate flagged (one alert per metric, ``metric`` in the webhook);
- ``rephrase_hotspot``: a cluster whose answers users rephrase (ask again in other words)
  more often than the rest's, or than its own baseline;
- ``global_drift``: the global two-sample test is flagged (no cluster).

Each alert is stored in ``alerts``, logged, listed in the report's ``alerts`` and POSTed to the
generic webhook (``kind, cluster_id, message, run_id, dashboard_url``, and ``metric`` and
``severity``) and to the Slack incoming webhook (``{"text": ...}``). Cooldown: an alert whose
cluster (its cross-run ``stable_key``, with ``/metric`` for a regression) and kind were alerted
within ``Settings.alert_cooldown_hours`` is stored as ``suppressed`` and sent nowhere. An alert
that reached no destination at all (``failed``) does not start a cooldown, so the next run
tries again. Deliveries are retried with exponential
backoff; a failed delivery is recorded in the alert's row and never fails the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis.findings import build_findings
from llmscope.analysis.matching import match_clusters
from llmscope.analysis.report import save_report
from llmscope.config import Settings, revealed
from llmscope.db.models import Alert, RunCluster
from llmscope.db.queries import load_run_report
from llmscope.report import AlertEntry, RunReport
from llmscope.webhooks import deliver

__all__ = [
    "AlertCandidate",
    "alert_candidates",
    "dashboard_link",
    "deliver",
    "raise_alerts",
    "raise_report_alerts",
]

log = logging.getLogger("llmscope.analysis.alerts")

GLOBAL_KEY = "global"
# Statuses that count as "alerted" for the cooldown: someone was (or could have been) told.
COOLDOWN_STATUSES = ("sent", "partial", "logged")


@dataclass(frozen=True)
class AlertCandidate:
    kind: str
    cluster_id: int | None
    message: str
    metric: str | None = None
    severity: float = 0.0


def alert_candidates(report: RunReport, rules: set[str]) -> list[AlertCandidate]:
    """The alerts the rules raise for a run report (before any cooldown), in the order of the
    report's findings (most severe first; a report stored without them gets them built)."""
    findings = report.findings or build_findings(report)
    return [
        AlertCandidate(f.kind, f.cluster_id, f.message, f.metric, f.severity)
        for f in findings
        if f.kind in rules
    ]


def dashboard_link(dashboard_url: str, run_id: str, cluster_id: int | None) -> str:
    base = dashboard_url.rstrip("/")
    if cluster_id is None:
        return f"{base}/?run={run_id}"
    return f"{base}/clusters/{cluster_id}?run={run_id}"


def _in_cooldown(session: Session, key: str, kind: str, since: datetime) -> bool:
    hit = session.scalar(
        select(Alert.id)
        .where(
            Alert.stable_key == key,
            Alert.kind == kind,
            Alert.created_at >= since,
            Alert.delivery_status.in_(COOLDOWN_STATUSES),
        )
        .limit(1)
    )
    return hit is not None


def _overall(results: dict[str, dict[str, Any]]) -> str:
    if not results:
        return "logged"
    sent = [r["status"] == "sent" for r in results.values()]
    return "sent" if all(sent) else "partial" if any(sent) else "failed"


def _stable_keys(session: Session, run_id: str) -> dict[int, str | None]:
    rows = session.execute(
        select(RunCluster.cluster_id, RunCluster.stable_key).where(RunCluster.run_id == run_id)
    ).all()
    return {cid: key for cid, key in rows}


def raise_alerts(session: Session, run_id: str, settings: Settings) -> list[Alert]:
    """Store, deliver and list the alerts of the stored run ``run_id`` and store its report;
    returns the rows (suppressed ones too). The caller commits."""
    report = load_run_report(session, run_id)
    if report is None:
        raise LookupError(f"no analysis run {run_id!r}")
    rows = raise_report_alerts(session, report, settings)
    save_report(session, report)
    return rows


def raise_report_alerts(session: Session, report: RunReport, settings: Settings) -> list[Alert]:
    """Store and deliver the alerts of the run ``report`` and list them in its ``alerts``;
    returns the rows (suppressed ones too).

    The caller commits and stores the report. Delivery problems are recorded, never raised.
    """
    run_id = report.run_id
    keys = _stable_keys(session, run_id)
    if any(key is None for cid, key in keys.items() if cid >= 0):
        # Cooldowns need identities that survive re-clustering: match first if nobody did.
        match_clusters(session, run_id, settings.cluster_match_threshold)
        keys = _stable_keys(session, run_id)
    rules = set(settings.alert_rules.split(","))
    now = datetime.now(UTC)
    since = now - timedelta(hours=settings.alert_cooldown_hours)
    destinations = {
        name: url
        for name, url in (
            ("webhook", revealed(settings.alert_webhook_url)),
            ("slack", revealed(settings.alert_slack_webhook_url)),
        )
        if url
    }
    rows: list[Alert] = []
    with httpx.Client(timeout=settings.alert_delivery_timeout_s) as client:
        for candidate in alert_candidates(report, rules):
            cid = candidate.cluster_id
            key = GLOBAL_KEY if cid is None else keys.get(cid) or f"{run_id}:{cid}"
            if candidate.metric:
                # Each metric of a cluster has its own cooldown: a latency alert must not
                # silence the same cluster's error-rate alert.
                key = f"{key}/{candidate.metric}"
            row = Alert(
                run_id=run_id,
                created_at=now,
                kind=candidate.kind,
                cluster_id=cid,
                stable_key=key,
                message=candidate.message,
            )
            if settings.alert_cooldown_hours > 0 and _in_cooldown(
                session, key, candidate.kind, since
            ):
                row.delivery_status = "suppressed"
                row.delivery = {"reason": f"cooldown of {settings.alert_cooldown_hours:g} h"}
                log.info("alert suppressed kind=%s cluster=%s run=%s", candidate.kind, cid, run_id)
            else:
                link = dashboard_link(settings.dashboard_url, run_id, cid)
                payloads: dict[str, dict[str, Any]] = {
                    "webhook": {
                        "kind": candidate.kind,
                        "cluster_id": cid,
                        "message": candidate.message,
                        "run_id": run_id,
                        "dashboard_url": link,
                        "stable_key": key,
                        "metric": candidate.metric,
                        "severity": candidate.severity,
                    },
                    "slack": {"text": f"*llmscope {candidate.kind}*: {candidate.message} <{link}>"},
                }
                results = {
                    name: deliver(
                        client,
                        url,
                        payloads[name],
                        settings.alert_delivery_attempts,
                        settings.alert_delivery_backoff_s,
                    )
                    for name, url in destinations.items()
                }
                row.delivery_status = _overall(results)
                row.delivery = results
                log.warning(
                    "alert kind=%s cluster=%s run=%s delivery=%s message=%s",
                    candidate.kind,
                    cid,
                    run_id,
                    row.delivery_status,
                    candidate.message,
                )
            session.add(row)
            # Flushed one by one so a later candidate's cooldown sees this one.
            session.flush()
            rows.append(row)
    report.alerts = [
        AlertEntry(kind=r.kind, cluster_id=r.cluster_id, message=r.message)
        for r in rows
        if r.delivery_status != "suppressed"
    ]
    return rows
