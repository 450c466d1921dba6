"""An experiment's report from its stored answers: each side's figures and the paired tests.

An answer *passes* when every evaluator that gave it a pass/fail passed it (no pass/fail at all:
not judged); its *score* is the mean of the LLM judges' scores. A variant is compared with the
baseline on the records both answered (:func:`stats.compare`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmscope.db.models import ExperimentItem
from llmscope.evaluate.experiments.stats import compare
from llmscope.experiment_report import ExperimentReport, Side, VariantResult

if TYPE_CHECKING:
    from llmscope.evaluate.experiments.runner import Plan

BASELINE = "baseline"


def passed(verdicts: dict[str, Any]) -> bool | None:
    values = [v.get("passed") for v in verdicts.values() if v.get("passed") is not None]
    return None if not values else all(values)


def score(verdicts: dict[str, Any]) -> float | None:
    values = [
        float(v["score"])
        for v in verdicts.values()
        if v.get("type") in (None, "llm_judge") and v.get("score") is not None
    ]
    return None if not values else sum(values) / len(values)


def side(rows: Sequence[ExperimentItem]) -> dict[str, Any]:
    ok = [r for r in rows if r.status == "ok"]
    passes = [p for p in (passed(r.verdicts or {}) for r in ok) if p is not None]
    scores = [s for s in (score(r.verdicts or {}) for r in ok) if s is not None]
    latencies = [r.latency_ms for r in ok if r.latency_ms is not None]
    costs = [r.cost_usd for r in ok if r.cost_usd is not None]
    return {
        "answers": len(ok),
        "errors": len(rows) - len(ok),
        "judged": len(passes),
        "pass_rate": sum(passes) / len(passes) if passes else None,
        "mean_score": statistics.fmean(scores) if scores else None,
        "latency_p50": statistics.median(latencies) if latencies else None,
        "tokens": sum((r.input_tokens or 0) + (r.output_tokens or 0) for r in ok),
        "cost": round(sum(costs), 9) if costs else None,
    }


def build(
    plan: Plan,
    rows: Sequence[ExperimentItem],
    *,
    created: datetime,
    reused: dict[str, int],
    stopped: str | None,
) -> ExperimentReport:
    by_variant: dict[str, dict[str, ExperimentItem]] = {}
    for row in rows:
        by_variant.setdefault(row.variant, {})[row.record_id] = row
    base = by_variant.get(BASELINE, {})
    variants = []
    for variant in plan.variants:
        mine = by_variant.get(variant.name, {})
        common = [i["id"] for i in plan.items if i["id"] in base and i["id"] in mine]
        common = [r for r in common if mine[r].status == "ok"]
        result = compare(
            [passed(base[r].verdicts or {}) for r in common],
            [passed(mine[r].verdicts or {}) for r in common],
            [score(base[r].verdicts or {}) for r in common],
            [score(mine[r].verdicts or {}) for r in common],
        )
        variants.append(
            VariantResult(
                name=variant.name,
                spec=variant.spec,
                resolved=variant.describe(),
                reused=reused.get(variant.name, 0),
                **side(list(mine.values())),
                pairs=result.pairs,
                pass_rate_difference=result.pass_rate_difference,
                ci=result.ci,
                p_value=result.p_value,
                score_pairs=result.score_pairs,
                mean_score_difference=result.mean_score_difference,
                score_ci=result.score_ci,
                score_p_value=result.score_p_value,
                verdict=result.verdict,
                needed_sample=result.needed_sample,
            )
        )
    return ExperimentReport(
        id=plan.id,
        status="stopped" if stopped else "done",
        created_at=created,
        run_id=plan.run_id,
        cluster_id=plan.cluster_id,
        records=len(plan.items),
        evaluators=[e.name for e in plan.evaluators],
        baseline=Side(**side(list(base.values()))),
        variants=variants,
        stopped=stopped,
    )
