"""What ``run_clusters.stats`` holds: :class:`ClusterStats`, one cluster's figures in a run.

The analysis writes it (``analysis/report.py``'s ``cluster_stats``): the report entry's
numbers, as JSON, plus what the report leaves out (shrunken rates, endpoint and model counts,
the rephrased and regenerated records of a cluster of the cut) and, for a sub-cluster, its
``parent`` and its ``members`` (the run's assignments hold only the clusters of the cut). The
experiments' dataset, the dashboard and the exports read it back; rows of older runs may lack
keys added since, so readers of those use ``.get``.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = ["ClusterStats"]


class ClusterStats(TypedDict):
    """One cluster of a run, as ``run_clusters.stats`` stores it."""

    size: int
    baseline_count: int
    current_count: int
    baseline_share: float
    current_share: float
    drift: dict[str, Any]  # the report entry's drift, as JSON
    feedback: dict[str, Any]  # ... its feedback
    hotspot: dict[str, Any]  # ... its hotspot, plus shrunken_down_rate
    evaluations: dict[str, dict[str, Any]]  # ... its evaluations, each plus shrunken_fail_rate
    latency_ms: dict[str, Any]
    tokens: dict[str, Any]
    templates: dict[str, int]  # calls per "name@version"
    endpoints: dict[str, int]  # calls per endpoint
    models: dict[str, int]  # calls per model
    # clusters of the cut in a run with conversations: the report entry's ``implicit`` plus
    # ``rephrased``/``regenerated`` (record id -> its next turn's id) and example ``pairs``
    implicit: NotRequired[dict[str, Any]]
    # runs with sessions: the report entry's ``sessions`` plus ``examples``, ids of sessions
    # that ended badly in this cluster (newest first)
    sessions: NotRequired[dict[str, Any]]
    parent: NotRequired[int]  # sub-clusters only: the cluster or sub-cluster above
    members: NotRequired[list[str]]  # sub-clusters only: their record ids
