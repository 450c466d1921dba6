"""Reads for implicit feedback: a cluster's rephrased answers, and a record's turn flags.

The analysis decides which records were rephrased or regenerated and stores them with the
cluster (``run_clusters.stats["implicit"]``: each such record's next turn, and a few example
pairs); these reads only fetch them and the texts they point at.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from llmscope.dashboard.data.common import record_text
from llmscope.db import queries
from llmscope.db.models import Record
from llmscope.db.queries import cluster_implicit

__all__ = ["rephrase_pairs", "turn_flags"]


def _implicit(engine: Engine, run_id: str, cluster_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return cluster_implicit(conn, run_id, cluster_id)


def rephrase_pairs(engine: Engine, run_id: str, cluster_id: int) -> list[dict[str, Any]]:
    """The cluster's example pairs, newest first: ``{id, question, answer, rephrase_id,
    rephrase}`` (the answer the user saw, then what they asked next in other words)."""
    pairs = [(str(a), str(b)) for a, b in _implicit(engine, run_id, cluster_id).get("pairs", [])]
    if not pairs:
        return []
    ids = {i for pair in pairs for i in pair}
    with engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                select(Record.id, Record.prompt, Record.messages, Record.response).where(
                    Record.id.in_(ids)
                )
            )
        }
    out = []
    for first, then in pairs:
        if first in rows and then in rows:
            out.append(
                {
                    "id": first,
                    "question": record_text(rows[first].prompt, rows[first].messages),
                    "answer": rows[first].response or "",
                    "rephrase_id": then,
                    "rephrase": record_text(rows[then].prompt, rows[then].messages),
                }
            )
    return out


def turn_flags(engine: Engine, run_id: str, record_id: str) -> dict[str, str]:
    """What run ``run_id`` found about the record's next turn: ``{"rephrased": next id}``,
    ``{"regenerated": next id}`` or ``{}`` (``queries.turn_flags``)."""
    with engine.connect() as conn:
        return queries.turn_flags(conn, run_id, record_id)
