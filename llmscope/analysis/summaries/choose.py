"""Which clusters of a run the LLM summarises: those of the run's findings, in the findings'
order (most severe first), then the largest few, at most ``Settings.summary_max_clusters``."""

from __future__ import annotations

from collections.abc import Sequence

from llmscope.config import Settings
from llmscope.report import ClusterEntry, Finding

__all__ = ["choose_for_llm"]


def choose_for_llm(
    clusters: Sequence[ClusterEntry], findings: Sequence[Finding], settings: Settings
) -> list[int]:
    """Cluster ids for the LLM, in the order they are worth its time."""
    known = {c.id for c in clusters}
    chosen: list[int] = []
    for finding in findings:
        cid = finding.cluster_id
        if cid is not None and cid in known and cid not in chosen:
            chosen.append(cid)
    largest = [c.id for c in sorted(clusters, key=lambda c: c.size, reverse=True)]
    chosen += [cid for cid in largest[: settings.summary_largest_clusters] if cid not in chosen]
    return chosen[: settings.summary_max_clusters]
