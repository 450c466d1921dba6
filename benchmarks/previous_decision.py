"""The decision before issue 12, kept for comparison in the benchmarks (not used by llmscope).

Per cluster of the cut only: share change (Fisher, BH at alpha/3), thumbs-down hotspot on the
current window's ratings only (one-sided Fisher against the rest, BH at alpha/3). No tree, no
persistent/emerging split, no novel group. Built from the public functions of ``stats``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmscope.analysis import stats
from llmscope.config import Settings


def previous_decision(
    labels: np.ndarray, n_clusters: int, is_current: np.ndarray, down: Sequence[bool | None],
    settings: Settings,
) -> tuple[list[stats.ShareChange], list[stats.Hotspot]]:  # fmt: skip
    """Per cluster: (share change, hotspot), as ``pipeline.window_tests`` decided them before."""
    levels = stats.split_alpha(settings.drift_alpha)

    def per_cluster(mask: np.ndarray) -> list[int]:
        ok = mask & (labels >= 0)
        return np.bincount(labels[ok], minlength=n_clusters)[:n_clusters].tolist()

    drift = stats.share_changes(
        per_cluster(~is_current), per_cluster(is_current),
        baseline_total=int((~is_current).sum()), current_total=int(is_current.sum()),
        fdr=levels.cluster_drift, min_ratio=settings.drift_min_ratio,
        min_share_change=settings.drift_min_share_change,
    )  # fmt: skip
    rated = np.array([d is not None for d in down]) & is_current
    is_down = np.array([bool(d) for d in down])
    spots = stats.hotspots(
        per_cluster(rated), per_cluster(rated & is_down), fdr=levels.hotspots,
        min_rated=settings.hotspot_min_rated, min_lift=settings.hotspot_min_lift,
    )  # fmt: skip
    return drift, spots
