"""Which clusters of a run the LLM summarises: flagged first (hotspots, then drift), then the
largest few, at most ``Settings.summary_max_clusters``."""

from __future__ import annotations

from collections.abc import Sequence

from llmscope.config import Settings
from llmscope.report import ClusterEntry

__all__ = ["choose_for_llm"]


def choose_for_llm(clusters: Sequence[ClusterEntry], settings: Settings) -> list[int]:
    """Cluster ids for the LLM, in the order they are worth its time."""

    def size(c: ClusterEntry) -> int:
        return c.size

    hot = sorted((c for c in clusters if c.hotspot.flagged), key=size, reverse=True)
    drift = sorted(
        (c for c in clusters if c.drift.flagged and not c.hotspot.flagged),
        key=size,
        reverse=True,
    )
    chosen = [c.id for c in hot + drift]
    largest = [c.id for c in sorted(clusters, key=size, reverse=True)]
    chosen += [cid for cid in largest[: settings.summary_largest_clusters] if cid not in chosen]
    return chosen[: settings.summary_max_clusters]
