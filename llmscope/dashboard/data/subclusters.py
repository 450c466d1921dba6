"""Reads for sub-clusters: which records each flagged tree node below the cut holds.

A sub-cluster is an entry of the run report with a ``parent`` (see ``llmscope.report``). The
run's assignments hold only the cluster of the cut, so a sub-cluster's records are the
``members`` list the analysis stores in its ``run_clusters.stats``; the cluster queries take
that list as ``members`` to narrow to the sub-cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Engine, Text, cast, or_, select

from llmscope.db.models import RunCluster
from llmscope.report import ClusterEntry, deepest_subcluster, stored_members


def subcluster_members(engine: Engine, run_id: str) -> dict[int, list[str]]:
    """Each sub-cluster of the run (an entry whose stats name a parent) -> its record ids."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunCluster.cluster_id, RunCluster.stats).where(RunCluster.run_id == run_id)
        ).all()
    found = {int(cid): stored_members(stats) for cid, stats in rows}
    return {cid: members for cid, members in found.items() if members is not None}


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
    return stored_members(stats) or []


def record_subclusters(engine: Engine, record_id: str, run_ids: Sequence[str]) -> dict[str, int]:
    """Per run of ``run_ids``: the most specific sub-cluster holding ``record_id`` (runs where
    none does are left out). The stored stats are first searched as text for the quoted id, so
    only the sub-clusters naming it are parsed, not every member list of every run."""
    if not run_ids:
        return {}
    text = cast(RunCluster.stats, Text)
    quoted = {json.dumps(record_id), json.dumps(record_id, ensure_ascii=False)}
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunCluster.run_id, RunCluster.cluster_id, RunCluster.stats).where(
                RunCluster.run_id.in_(list(run_ids)),
                or_(*[text.contains(q, autoescape=True) for q in quoted]),
            )
        ).all()
    found: dict[str, dict[int, int | None]] = {}
    for run_id, cid, stats in rows:
        if record_id in (stored_members(stats) or ()):
            found.setdefault(run_id, {})[int(cid)] = int(stats["parent"])
    # The sub-clusters holding a record are nested: the deepest of them is the most specific.
    return {
        run_id: deepest_subcluster(parents, {c: [record_id] for c in parents})[record_id]
        for run_id, parents in found.items()
    }
