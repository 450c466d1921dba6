"""The dashboard's evaluation views: a record's verdicts, and a judge that disagrees with users."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from llmscope.dashboard.app import render_path
from llmscope.dashboard.pages.record import disagreements
from llmscope.db.models import AnalysisRun, Feedback, Record
from llmscope.evaluate.evaluations import store
from llmscope.report import Agreement, EvaluationHotspot, EvaluatorEntry, RunReport
from tests.dashboard.seed import seed_store
from tests.dashboard.test_app import by_id, text_of

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_the_record_page_lists_verdicts_and_says_when_the_judge_disagrees(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        session.add(Record(id="rec-e", timestamp=NOW, prompt="Can I return shoes?", response="No."))
        session.flush()
        session.add(Feedback(record_id="rec-e", thumb="down", created_at=NOW))
        store.store_verdicts(
            session,
            [
                {
                    "record_id": "rec-e",
                    "evaluator": "correctness",
                    "version": "abc123",
                    "status": "done",
                    "score": 4.0,
                    "passed": True,
                    "created_at": NOW,
                    "justification": "States the 30-day policy.",
                    "judge_model": "judge-model",
                    "input_tokens": 300,
                    "output_tokens": 40,
                },
            ],
        )
        store.store_verdicts(
            session,
            [
                {
                    "record_id": "rec-e",
                    "evaluator": "brief",
                    "version": "def456",
                    "status": "done",
                    "score": 0.0,
                    "passed": False,
                    "created_at": NOW,
                    "justification": "1 words, fewer than 3",
                },
            ],
        )
        session.commit()
    layout = render_path(engine, "/records/rec-e", "")
    table = text_of(by_id(layout, "record-evaluations"))
    assert "correctness" in table and "States the 30-day policy." in table and "pass" in table
    assert "brief" in table and "fail" in table and "built-in check" in table
    text = text_of(layout)
    assert (
        "The evaluator correctness passed this answer, but the user gave it a thumbs-down" in text
    )
    assert "evaluator brief" not in text  # it agrees with the user


def test_disagreement_sentences() -> None:
    passed = {"evaluator": "j", "status": "done", "passed": True}
    failed = {"evaluator": "k", "status": "done", "passed": False}
    error = {"evaluator": "e", "status": "error", "passed": None}
    assert disagreements([passed, failed, error], None) == []
    assert len(disagreements([passed, failed, error], "up")) == 1
    assert "k failed this answer" in disagreements([failed], "up")[0]
    assert disagreements([passed], "up") == []


def test_a_record_without_evaluations_says_so(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Record(id="rec-none", timestamp=NOW, prompt="hi", response="hello"))
        session.commit()
    layout = render_path(engine, "/records/rec-none", "")
    assert "No evaluator has looked at this call." in text_of(layout)


def _with_evaluations(engine: Engine) -> tuple[str, int, list[str]]:
    """A seeded store whose run report and store carry a judge's verdicts."""
    seeded = seed_store(engine, records=200)
    problem = seeded.problem_cluster
    failing = seeded.clusters[problem][:3]
    with Session(engine) as session:
        store.store_verdicts(
            session,
            [
                {
                    "record_id": rid,
                    "evaluator": "correctness",
                    "version": "v1",
                    "status": "done",
                    "score": 1.0,
                    "passed": False,
                    "created_at": NOW,
                    "judge_model": "judge-model",
                    "justification": f"Cites the outdated export limit ({rid}).",
                }
                for rid in failing
            ],
        )
        run = session.get(AnalysisRun, seeded.run_id)
        assert run is not None
        report = RunReport.from_stored(run.report)
        cluster = report.cluster(problem)
        assert cluster is not None
        cluster.evaluations = {
            "correctness": EvaluationHotspot(
                evaluated=20,
                failed=17,
                fail_rate=0.85,
                lift=3.2,
                p_value=1e-6,
                q_value=2e-5,
                flagged=True,
            )
        }
        report.evaluators = {
            "correctness": EvaluatorEntry(
                version="v1",
                evaluated=60,
                failed=20,
                fail_rate=1 / 3,
                agreement=Agreement(
                    n=40,
                    kappa=0.05,
                    kappa_ci=[-0.2, 0.3],
                    confusion={"pass": {"up": 15, "down": 10}, "fail": {"up": 9, "down": 6}},
                ),
            )
        }
        run.report = report.to_json()
        session.commit()
    return seeded.run_id, problem, failing


def test_the_cluster_page_shows_fail_rates_and_failing_answers(engine: Engine) -> None:
    run_id, problem, failing = _with_evaluations(engine)
    layout = render_path(engine, f"/clusters/{problem}", f"?run={run_id}")
    table = text_of(by_id(layout, "cluster-evaluations"))
    assert "correctness" in table and "17 failed of 20 evaluated" in table and "flagged" in table
    examples = text_of(by_id(layout, "failing-examples"))
    assert all(f"Cites the outdated export limit ({rid})." in examples for rid in failing)


def test_the_evaluators_page_and_the_overview_chart(engine: Engine) -> None:
    run_id, _, _ = _with_evaluations(engine)
    layout = render_path(engine, "/evaluators", f"?run={run_id}")
    text = text_of(layout)
    assert "correctness disagrees with users: kappa 0.05 on 40 answers they rated" in text
    versions = text_of(by_id(layout, "evaluator-versions"))
    assert "v1" in versions and "judge-model" in versions
    assert "[-0.20, 0.30]" in text_of(by_id(layout, "evaluator-agreement"))
    figure = by_id(layout, "fail-rate-chart").figure
    assert [t["name"] for t in figure["data"]] == ["correctness"]
    overview = render_path(engine, "/", f"?run={run_id}")
    assert by_id(overview, "chart-fail-rate") is not None


def test_the_evaluators_page_explains_how_to_start(engine: Engine) -> None:
    assert "llmscope evaluate --config gateway.yaml" in text_of(
        render_path(engine, "/evaluators", "")
    )
