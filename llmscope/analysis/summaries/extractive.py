"""The summary made only of what the data says, for clusters no LLM summarised."""

from __future__ import annotations

from collections import Counter

from llmscope.analysis.prompts import ClusterBrief
from llmscope.report import ClusterSummary

__all__ = ["extractive_summary"]


def extractive_summary(
    brief: ClusterBrief, down_tags: Counter[str], reason: str, downs: int = 0
) -> ClusterSummary:
    """A summary made only of what the data says; ``generated_by`` is ``extractive``.

    ``down_tags`` counts the tags of the cluster's ``downs`` thumbs-down answers of both windows
    (the newest event of each record), so no tag count can exceed ``downs``; the sentence says
    so, since the thumbs-down figure next to it counts the current window only."""
    title = " / ".join(brief.keywords[:3]) or f"Cluster {brief.cluster_id}"
    questions = "; ".join(f'"{e.prompt}"' for e in brief.examples[:3] if e.prompt)
    parts = [
        f"{brief.size} requests ({brief.current_count} current, {brief.baseline_count} baseline).",
        f"Keywords: {', '.join(brief.keywords) or 'none'}.",
    ]
    if questions:
        parts.append(f"Representative questions: {questions}.")
    parts.append(
        f"Share of traffic {brief.baseline_share} -> {brief.current_share} "
        f"(drift: {brief.drift_kind}{', flagged' if brief.drift_flagged else ''})."
    )
    parts.append(
        f"Thumbs-down rate {brief.down_rate} of {brief.rated} rated"
        f"{' (flagged hotspot)' if brief.hotspot_flagged else ''}; "
        f"latency p50 {brief.latency_p50} ms, p95 {brief.latency_p95} ms."
    )
    for line in brief.evaluations:  # "- evaluator NAME: F of N answers failed (...)"
        sentence = line.removeprefix("- ")
        parts.append(sentence[:1].upper() + sentence[1:] + ".")
    for failure in brief.judge_failures[:3]:
        who = failure.tags[0] if failure.tags else "an evaluator"
        parts.append(f'Failed by {who}: "{failure.prompt}" -> "{failure.comment}".')
    tags = ", ".join(f"{tag} ({n})" for tag, n in down_tags.most_common(5))
    return ClusterSummary(
        title=title,
        text=" ".join(parts),
        # An extractive summary reports evidence, never a diagnosis.
        root_cause=(
            f"Tags on its {downs} thumbs-down {'answer' if downs == 1 else 'answers'} "
            f"(both windows): {tags}."
            if tags
            else None
        ),
        suggested_fix=None,
        generated_by="extractive",
        reason=reason,
    )
