"""Reads for the experiments views: past experiments with their verdicts, and one experiment's
answers side by side (the original and each variant's, with the evaluators' verdicts).

The figures and tests are the stored report's (``llmscope experiment run`` computed them); this
module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from llmscope.dashboard.data.common import record_text
from llmscope.db.models import Experiment, ExperimentItem, Record
from llmscope.experiment_report import ExperimentReport

LIST_LIMIT = 200
SIDE_BY_SIDE_LIMIT = 50


def list_experiments(engine: Engine, cluster_id: int | None = None) -> list[dict[str, Any]]:
    """The newest experiments first (at most ``LIST_LIMIT``), each with its variants' verdicts."""
    query = select(Experiment).order_by(Experiment.created_at.desc(), Experiment.id.desc())
    if cluster_id is not None:
        query = query.where(Experiment.cluster_id == cluster_id)
    out = []
    with engine.connect() as conn:
        for row in conn.execute(query.limit(LIST_LIMIT)).mappings():
            report = row["report"] or {}
            out.append(
                {
                    "id": row["id"],
                    "created_at": row["created_at"],
                    "run_id": row["run_id"],
                    "cluster_id": row["cluster_id"],
                    "status": row["status"],
                    "records": len(row["record_ids"] or []),
                    "variants": [
                        {
                            "spec": v.get("spec"),
                            "verdict": v.get("verdict"),
                            "p_value": v.get("p_value"),
                        }
                        for v in report.get("variants", [])
                    ]
                    or [
                        {"spec": v.get("spec"), "verdict": None, "p_value": None}
                        for v in (row["spec"] or {}).get("variants", [])
                    ],
                }
            )
    return out


@dataclass
class Answer:
    text: str | None
    error: str | None
    verdicts: dict[str, Any]


@dataclass
class Row:
    record_id: str
    question: str
    answers: dict[str, Answer] = field(default_factory=dict)  # "baseline", "1", "2", ...


def experiment_detail(
    engine: Engine, experiment_id: str, limit: int = SIDE_BY_SIDE_LIMIT
) -> tuple[ExperimentReport | None, dict[str, Any] | None, list[Row]]:
    """``(report, spec, rows)``: the stored report (None while running), the spec, and the first
    ``limit`` records' answers side by side, in dataset order; ``(None, None, [])`` if unknown."""
    with engine.connect() as conn:
        head = (
            conn.execute(select(Experiment).where(Experiment.id == experiment_id))
            .mappings()
            .first()
        )
        if head is None:
            return None, None, []
        ids = list(head["record_ids"] or [])[:limit]
        records = {
            r.id: r
            for r in conn.execute(
                select(Record.id, Record.prompt, Record.messages).where(Record.id.in_(ids))
            )
        }
        rows = {
            rid: Row(
                rid,
                record_text(records[rid].prompt, records[rid].messages) if rid in records else "",
            )
            for rid in ids
        }
        items = conn.execute(
            select(ExperimentItem).where(
                ExperimentItem.experiment_id == experiment_id, ExperimentItem.record_id.in_(ids)
            )
        ).mappings()
        for item in items:
            rows[item["record_id"]].answers[item["variant"]] = Answer(
                item["answer"], item["error"], dict(item["verdicts"] or {})
            )
    report = ExperimentReport.model_validate(head["report"]) if head["report"] else None
    return report, dict(head["spec"] or {}), [rows[rid] for rid in ids]
