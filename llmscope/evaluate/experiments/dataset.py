"""An experiment's dataset: which of a cluster's records are replayed, in a fixed order.

The records are the cluster's in the analysis run (``run_assignments``, or the members the run
stored for a sub-cluster; the app's own successful calls only, never internal ones). Every record
whose newest feedback is a thumbs-down or that an evaluator failed comes first, then a sample of
the rest, up to ``size`` in all. The sample is seeded by the run and cluster, so the same command
picks the same records (and so reuses its answers).
"""

from __future__ import annotations

import random

from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from llmscope.db.models import Evaluation, Record, RunAssignment, RunCluster, analysable
from llmscope.db.queries import newest_thumbs, resolve_run_id
from llmscope.db.record_row import RECORD_ROW, RecordRow, record_row
from llmscope.report import stored_members

DEFAULT_SIZE = 100


class DatasetError(ValueError):
    """No such run or cluster, or nothing to replay: one line, exit 2."""


class Item(RecordRow):
    """A record as an experiment needs it: the template's text too (a variant may edit it)."""

    template_text: str | None
    failing: bool  # a thumbs-down or a failed evaluation


COLUMNS = (*RECORD_ROW, Record.template_text)


def resolve_run(session: Session, run: str | None) -> str:
    run_id = resolve_run_id(session, run)
    if run_id is None:
        raise DatasetError(
            "--run: no analysis run yet (run llmscope analyze)"
            if run in (None, "latest")
            else f"--run: no analysis run {run!r}"
        )
    return run_id


def cluster_records(session: Session, run_id: str, cluster_id: int) -> list[str]:
    """Ids of the cluster's analysable records in the run, sorted; DatasetError if no cluster.

    A cluster of the cut holds the records assigned to it (``run_assignments``); a sub-cluster
    (an entry with a ``parent``) holds the members the run stored for it (``run_clusters.stats``).
    """
    stats = session.scalar(
        select(RunCluster.stats).where(
            RunCluster.run_id == run_id, RunCluster.cluster_id == cluster_id
        )
    )
    if stats is None:
        raise DatasetError(f"--cluster: no cluster {cluster_id} in run {run_id}")
    usable = (analysable(), Record.status == "ok")
    members = stored_members(stats)
    if members is not None:
        chunks = [members[i : i + 10_000] for i in range(0, len(members), 10_000)]
        found = [
            record_id
            for chunk in chunks
            for record_id in session.scalars(select(Record.id).where(Record.id.in_(chunk), *usable))
        ]
        return sorted(found)
    ids = session.scalars(
        select(Record.id)
        .join(RunAssignment, RunAssignment.record_id == Record.id)
        .where(
            RunAssignment.run_id == run_id,
            RunAssignment.cluster_id == cluster_id,
            *usable,
        )
        .order_by(Record.id)
    ).all()
    return list(ids)


def failing_ids(session: Session, ids: list[str]) -> set[str]:
    """Records whose newest feedback is a thumbs-down or that an evaluator failed."""
    failing = {rid for rid, down in newest_thumbs(session, ids).items() if down}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        failing.update(
            session.scalars(
                select(Evaluation.record_id).where(
                    Evaluation.record_id.in_(chunk),
                    Evaluation.status == "done",
                    Evaluation.passed.is_(False),
                )
            )
        )
    return failing


def choose(ids: list[str], failing: set[str], size: int, seed: str) -> list[str]:
    """Failing records first, then a seeded sample of the rest; at most ``size`` in all."""
    rng = random.Random(seed)
    bad = sorted(i for i in ids if i in failing)
    rest = sorted(i for i in ids if i not in failing)
    rng.shuffle(bad)
    rng.shuffle(rest)
    return (bad + rest)[:size]


def load(session: Session, ids: list[str], failing: set[str]) -> list[Item]:
    """The records ``ids`` in that order."""
    rows: dict[str, RowMapping] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in session.execute(select(*COLUMNS).where(Record.id.in_(chunk))).mappings():
            rows[row["id"]] = row
    return [
        Item(**record_row(rows[i]), template_text=rows[i]["template_text"], failing=i in failing)
        for i in ids
        if i in rows
    ]


def build(
    session: Session, run: str | None, cluster_id: int, size: int = DEFAULT_SIZE
) -> tuple[str, list[Item]]:
    """``(run_id, items)``: the experiment's dataset; DatasetError when there is none."""
    run_id = resolve_run(session, run)
    ids = cluster_records(session, run_id, cluster_id)
    if not ids:
        raise DatasetError(f"--cluster: cluster {cluster_id} of run {run_id} has no records")
    failing = failing_ids(session, ids)
    chosen = choose(ids, failing, size, f"{run_id}:{cluster_id}")
    return run_id, load(session, chosen, failing)
