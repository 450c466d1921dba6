"""The experiments pages read stored experiments: the list with verdicts, one experiment's
figures and its answers side by side."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from llmscope.dashboard.app import nav, render_path
from llmscope.db import make_sessionmaker, session_scope
from llmscope.db.models import Experiment, ExperimentItem
from llmscope.experiment_report import ExperimentReport, Side, VariantResult
from tests.dashboard.test_app import by_id, text_of

CREATED = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def seed_experiment(engine: Engine) -> None:
    report = ExperimentReport(
        id="exp-abc",
        status="done",
        created_at=CREATED,
        run_id="run-1",
        cluster_id=4,
        records=2,
        evaluators=["correctness"],
        baseline=Side(answers=2, judged=2, pass_rate=0.0, mean_score=1.0, tokens=80),
        variants=[
            VariantResult(
                name="1",
                spec="template=support@2",
                answers=2,
                judged=2,
                pass_rate=1.0,
                mean_score=5.0,
                tokens=82,
                pairs=2,
                p_value=0.5,
                ci=(-0.1, 1.0),
                verdict="no detectable difference",
                needed_sample=7,
            )
        ],
    )
    verdict = {
        "correctness": {
            "version": "v",
            "score": 1.0,
            "passed": False,
            "justification": "It states the outdated policy.",
        }
    }
    fixed = {
        "correctness": {"version": "v", "score": 5.0, "passed": True, "justification": "Current."}
    }
    with session_scope(make_sessionmaker(engine)) as session:
        session.add(
            Experiment(
                id="exp-abc",
                created_at=CREATED,
                run_id="run-1",
                cluster_id=4,
                status="done",
                spec={"variants": [{"name": "1", "spec": "template=support@2"}]},
                record_ids=["r-1", "r-2"],
                report=report.to_json(),
            )
        )
        session.flush()
        for rid in ("r-1", "r-2"):
            session.add(
                ExperimentItem(
                    experiment_id="exp-abc",
                    record_id=rid,
                    variant="baseline",
                    variant_key=f"record:{rid}",
                    answer=f"old answer {rid}",
                    verdicts=verdict,
                )
            )
            session.add(
                ExperimentItem(
                    experiment_id="exp-abc",
                    record_id=rid,
                    variant="1",
                    variant_key=f"k-{rid}",
                    answer=f"new answer {rid}",
                    verdicts=fixed,
                )
            )


def test_the_list_shows_each_experiment_with_its_verdicts(engine: Engine) -> None:
    empty = text_of(render_path(engine, "/experiments", ""))
    assert "No experiment yet" in empty and "llmscope experiment run" in empty
    # The browser's way is named too, and the command names the store the dashboard reads.
    assert "Try a fix" in empty and f"--database-url {engine.url}" in empty
    seed_experiment(engine)
    table = by_id(render_path(engine, "/experiments", ""), "experiments-table")
    text = text_of(table)
    assert "exp-abc" in text and "template=support@2" in text
    assert "no detectable difference" in text
    assert any("Experiments" in text_of(link) for link in nav("/experiments", ""))


def test_an_experiment_shows_figures_verdict_and_answers_side_by_side(engine: Engine) -> None:
    seed_experiment(engine)
    layout = render_path(engine, "/experiments/exp-abc", "")
    summary = text_of(by_id(layout, "experiment-summary"))
    assert "baseline (production)" in summary and "100.0%" in summary
    assert "about 7 records would tell" in summary
    answers = text_of(by_id(layout, "experiment-answers"))
    for rid in ("r-1", "r-2"):
        assert f"old answer {rid}" in answers and f"new answer {rid}" in answers
    assert "outdated policy" in answers and "fail" in answers and "pass" in answers
    missing = text_of(render_path(engine, "/experiments/exp-nope", ""))
    assert "Experiment not found" in missing


def test_the_cluster_page_offers_to_try_a_fix_and_lists_its_experiments(engine: Engine) -> None:
    from llmscope.dashboard.pages.experiments import try_a_fix
    from llmscope.dashboard.state import parse

    flag = "--database-url sqlite:///store.db"
    empty = text_of(try_a_fix(engine, parse(""), 4, None, flag))
    assert "Try a fix" in empty and "--cluster 4" in empty and "No experiment on this" in empty
    assert flag in empty
    seed_experiment(engine)
    listed = try_a_fix(engine, parse(""), 4, None, flag)
    assert "exp-abc" in text_of(by_id(listed, "cluster-experiments"))
    assert "exp-abc" not in text_of(try_a_fix(engine, parse(""), 5, None, flag))


def test_the_try_a_fix_form_and_request_follow_the_collector_options() -> None:
    from llmscope.dashboard.tryfix import form, request_from

    options = {
        "templates": [{"name": "support", "version": "2", "text": "..."}],
        "endpoints": [{"name": "support-route", "kind": "route", "type": "llm/v1/chat"}],
        "evaluators": [{"name": "correctness", "type": "llm_judge"}],
    }
    layout = form(options)
    assert "Registered template" in text_of(layout) and "no evaluators" not in text_of(layout)
    assert by_id(layout, "tryfix-evaluators").value == ["correctness"]  # all judge by default
    assert by_id(layout, "tryfix-endpoint").options == [
        {"label": "support-route (route)", "value": "support-route"}
    ]
    assert "no evaluators: section" in text_of(form({**options, "evaluators": []}))
    # Run waits for an evaluator: enabled with one chosen, disabled when there is none.
    assert by_id(layout, "tryfix-run").disabled is False
    assert by_id(form({**options, "evaluators": []}), "tryfix-run").disabled is True
    context = {"cluster_id": 3, "run_id": "run-1"}
    request = request_from(context, "support@2", "  ", "support-route", 0.2, 50, [], None)
    assert request.model_dump(exclude_none=True) == {
        "cluster_id": 3,
        "run": "run-1",
        "variants": [
            {"template": "support@2", "endpoint": "support-route",
             "params": {"temperature": 0.2, "max_tokens": 50}}
        ],
        "sample": 100,
    }  # fmt: skip


def test_the_verdict_in_words_reads_as_a_sentence(engine: Engine) -> None:
    from llmscope.dashboard.tryfix import result

    seed_experiment(engine)
    verdict = text_of(by_id(result(engine, "exp-abc"), "tryfix-verdict"))
    assert verdict.startswith("The candidate makes no detectable difference")
    assert ": pass rate 0.0%" in verdict
    assert "→ 100.0% on 2 paired records (McNemar p=" in verdict
    assert "95% CI [-10.0, +100.0] pts); about 7 records would tell." in verdict
