"""Reads for sub-clusters: which records each flagged tree node below the cut holds.

A sub-cluster is an entry of the run report with a ``parent`` (see ``llmscope.report``). The
run's assignments hold only the cluster of the cut, so a sub-cluster's records are the
``members`` list the analysis stores in its ``run_clusters.stats``; the cluster queries take
that list as ``members`` to narrow to the sub-cluster.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from llmscope.db.models import RunCluster
from llmscope.report import ClusterEntry


def subcluster_members(engine: Engine, run_id: str) -> dict[int, list[str]]:
    """Each sub-cluster of the run (an entry whose stats name a parent) -> its record ids."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunCluster.cluster_id, RunCluster.stats).where(RunCluster.run_id == run_id)
        ).all()
    return {int(cid): _members(stats) for cid, stats in rows if _is_sub(stats)}


def members_of(engine: Engine, run_id: str, cluster: ClusterEntry) -> list[str] | None:
    """The record ids of ``cluster`` when it is a sub-cluster; None for a cluster of the cut
    (whose records the assignments name directly)."""
    if cluster.parent is None:
        return None
    with engine.connect() as conn:
        stats = conn.scalar(
            select(RunCluster.stats).where(
                RunCluster.run_id == run_id, RunCluster.cluster_id == cluster.id
            )
        )
    return _members(stats) if _is_sub(stats) else []


def _is_sub(stats: Any) -> bool:
    return isinstance(stats, dict) and stats.get("parent") is not None


def _members(stats: Any) -> list[str]:
    return [str(m) for m in (stats or {}).get("members", [])]
