"""Summaries for a whole run: every cluster gets one, in ``run_clusters`` and in the report."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis.findings import build_findings
from llmscope.analysis.report import save_report
from llmscope.analysis.summaries.choose import choose_for_llm
from llmscope.analysis.summaries.evidence import (
    EXAMPLES_SHOWN,
    THUMBS_DOWN_SHOWN,
    UserFeedback,
    baseline_ids,
    brief,
    cluster_member_ids,
    failed_verdicts,
    latest_feedback,
    records_by_id,
)
from llmscope.analysis.summaries.extractive import extractive_summary
from llmscope.analysis.summaries.llm import LLMWriter, llm_summary
from llmscope.config import Settings
from llmscope.db.models import RunCluster
from llmscope.db.queries import load_run_report
from llmscope.report import ClusterSummary, RunReport

__all__ = ["summarize_report", "summarize_run"]

log = logging.getLogger("llmscope.analysis.summaries")


def summarize_report(
    session: Session, report: RunReport, settings: Settings
) -> dict[int, ClusterSummary]:
    """Write a summary for every cluster of the run ``report``; returns them by cluster id.

    Each goes to ``run_clusters.summary`` (the caller commits) and, once all are written, to
    the cluster's ``summary`` in ``report`` (the caller stores it). Never raises because of
    the LLM.
    """
    run_id = report.run_id
    clusters = [c for c in report.clusters if c.id >= 0]
    rows = {
        c.cluster_id: c
        for c in session.scalars(select(RunCluster).where(RunCluster.run_id == run_id))
    }
    chosen = set(choose_for_llm(clusters, report.findings or build_findings(report), settings))
    down_by_cluster: dict[int, list[tuple[str, UserFeedback]]] = {}
    for record_id, (cluster_id, event) in latest_feedback(session, run_id).items():
        if event.thumb == "down":
            down_by_cluster.setdefault(cluster_id, []).append((record_id, event))

    failed_by_cluster = failed_verdicts(session, run_id)

    configured = bool(settings.summary_llm_url and settings.summary_llm_model)
    writer: LLMWriter | None = None
    if configured and settings.summary_max_clusters:
        writer = LLMWriter(settings)
    results: dict[int, ClusterSummary] = {}
    try:
        for cluster in clusters:
            cid = cluster.id
            use_llm = writer is not None and cid in chosen
            example_ids = [str(i) for i in cluster.examples][:EXAMPLES_SHOWN]
            if not example_ids:
                example_ids = cluster_member_ids(session, run_id, cid, EXAMPLES_SHOWN)
            downs = down_by_cluster.get(cid, [])
            # Commented thumbs-down say the most; ids break ties so the prompt is repeatable.
            downs.sort(key=lambda item: (not item[1].comment, item[0]))
            down_ids = [rid for rid, _ in downs[:THUMBS_DOWN_SHOWN]] if use_llm else []
            base_ids = baseline_ids(session, run_id, cid) if use_llm else []
            failed = failed_by_cluster.get(cid, [])[:THUMBS_DOWN_SHOWN]
            failed_ids = [rid for rid, _, _ in failed]
            records = records_by_id(session, example_ids + down_ids + base_ids + failed_ids)
            about = brief(
                cluster,
                [records[i] for i in example_ids if i in records],
                [(records[rid], f) for rid, f in downs[:THUMBS_DOWN_SHOWN] if rid in records],
                [records[i] for i in base_ids if i in records],
                [(records[rid], name, why) for rid, name, why in failed if rid in records],
            )
            summary: ClusterSummary | None = None
            reason = "not among the clusters sent to the LLM"
            if not configured:
                reason = "no summary LLM configured"
            elif writer is not None and use_llm:
                summary, reason = llm_summary(session, writer, about)
            if summary is None:
                # Each answer counts once per tag, so no count exceeds the thumbs-down.
                tags = Counter(tag for _, f in downs for tag in dict.fromkeys(f.tags))
                summary = extractive_summary(about, tags, reason, len(downs))
            if cid in rows:
                rows[cid].summary = summary.to_json()
            results[cid] = summary
    finally:
        if writer is not None:
            writer.close()
    session.flush()
    for cluster in clusters:
        cluster.summary = results[cluster.id]
    llm = sum(1 for s in results.values() if s.generated_by != "extractive")
    log.info(
        "summaries written run=%s clusters=%d llm=%d extractive=%d tokens=%d",
        run_id,
        len(results),
        llm,
        len(results) - llm,
        writer.used if writer else 0,
    )
    return results


def summarize_run(session: Session, run_id: str, settings: Settings) -> dict[int, dict[str, Any]]:
    """Summarise the stored run ``run_id`` and store its report; returns the summaries' JSON
    by cluster id. The caller commits."""
    report = load_run_report(session, run_id)
    if report is None:
        raise LookupError(f"no analysis run {run_id!r}")
    results = summarize_report(session, report, settings)
    save_report(session, report)
    return {cid: summary.to_json() for cid, summary in results.items()}
