"""Evaluations in the analysis: kappa on hand-made tables, the joint hotspot family, and end to
end a topic whose answers fail the judge is flagged with no thumbs at all."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from llmscope.analysis import stats
from llmscope.analysis.embedding import load_model
from llmscope.analysis.evaluations import (
    cohens_kappa,
    evaluation_tests,
    hotspot_levels,
    joint_hotspots,
)
from llmscope.analysis.job import run_analysis
from llmscope.analysis.windows import parse_interval
from llmscope.app.cli import main
from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import Evaluation, Feedback, Record
from tests.analysis.http_fakes import fake_llm
from tests.analysis.traffic import BASELINE, CURRENT, NOW, question
from tests.evaluate.evaluations.support import JUDGE, grade, write_config


def _pairs(table: list[list[int]]) -> tuple[list[bool], list[bool]]:
    """(judge passed, user up) pairs from [[pass&up, pass&down], [fail&up, fail&down]]."""
    judge, user = [], []
    for j, row in zip((True, False), table, strict=True):
        for u, count in zip((True, False), row, strict=True):
            judge += [j] * count
            user += [u] * count
    return judge, user


def test_kappa_on_hand_made_tables() -> None:
    # po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    found = cohens_kappa(*_pairs([[20, 5], [10, 15]]))
    assert found.n == 50 and found.kappa == pytest.approx(0.4)
    assert found.confusion == {"pass": {"up": 20, "down": 5}, "fail": {"up": 10, "down": 15}}
    # Fleiss-Cohen-Everitt variance, worked by hand for this table:
    # diagonal .4(1-1.1*.6)^2 + .3(1-.9*.6)^2 = .10972; off-diagonal .36(.1*1.21 + .2*.81)
    # = .10188; minus (.4 - .5*.6)^2 = .01; over n(1-pe)^2 = 50*.25
    low, high = found.kappa_ci or (0, 0)
    se = math.sqrt((0.10972 + 0.10188 - 0.01) / (50 * 0.25))
    assert low == pytest.approx(0.4 - 1.959964 * se, abs=1e-6)
    assert high == pytest.approx(0.4 + 1.959964 * se, abs=1e-6)
    perfect = cohens_kappa(*_pairs([[30, 0], [0, 20]]))
    assert perfect.kappa == pytest.approx(1.0) and perfect.kappa_ci == (1.0, 1.0)
    # the judge fails exactly what users like: full disagreement
    opposite = cohens_kappa(*_pairs([[0, 25], [25, 0]]))
    assert opposite.kappa == pytest.approx(-1.0)
    # independent raters: kappa 0, and the interval holds it
    chance = cohens_kappa(*_pairs([[16, 16], [4, 4]]))
    assert chance.kappa == pytest.approx(0.0) and chance.kappa_ci[0] < 0 < chance.kappa_ci[1]
    # both raters constant and equal: kappa is undefined, not 1 or NaN
    assert cohens_kappa(*_pairs([[10, 0], [0, 0]])).kappa is None
    assert cohens_kappa([], []).n == 0


def test_one_family_alone_is_unchanged_and_a_second_family_shares_the_level() -> None:
    rated, down = [40, 40, 40, 40], [30, 6, 5, 7]
    alone = stats.hotspots(rated, down, fdr=0.05 / 3)
    assert joint_hotspots([alone], fdr=0.05 / 3, min_lift=1.5) == [alone]
    noise = stats.hotspots([40] * 4, [8, 9, 8, 8], fdr=0.05 / 3)
    thumbs, evals = joint_hotspots([alone, noise], fdr=0.05 / 3, min_lift=1.5)
    assert thumbs[0].flagged and not any(e.flagged for e in evals)
    # more hypotheses in the family: q-values can only grow
    assert all((a.q_value or 0) <= (b.q_value or 0) for a, b in zip(alone, thumbs, strict=True))


def test_evaluation_tests_count_the_current_window_and_agreement_on_both() -> None:
    import numpy as np

    labels = np.array([0] * 20 + [1] * 20)
    is_current = np.array(([False] * 5 + [True] * 15) * 2)
    # cluster 0 fails every current answer, cluster 1 passes; one evaluator
    passed = {"judge": [not (i < 20 and is_current[i]) for i in range(40)]}
    thumbs: list[bool | None] = [None] * 40
    thumbs[5], thumbs[25], thumbs[26] = True, False, True  # down, up, down
    by_eval, summary = evaluation_tests(
        labels, 2, is_current, passed, thumbs, fdr=0.05 / 6, min_rated=10, min_lift=1.5
    )
    assert by_eval["judge"][0].flagged and not by_eval["judge"][1].flagged
    assert (by_eval["judge"][0].rated, by_eval["judge"][0].down) == (15, 15)
    assert summary["judge"]["evaluated"] == 30 and summary["judge"]["failed"] == 15
    agreement = summary["judge"]["agreement"]
    assert agreement["n"] == 3  # type: ignore[index]
    assert agreement["confusion"] == {  # type: ignore[index]
        "pass": {"up": 1, "down": 1},
        "fail": {"up": 0, "down": 1},
    }
    assert evaluation_tests(
        labels, 2, is_current, {}, thumbs, fdr=0.05 / 6, min_rated=10, min_lift=1.5
    ) == ({}, {})


def test_the_hotspot_share_is_split_only_when_there_are_evaluations() -> None:
    assert hotspot_levels(0.05, False) == (0.05 / 5, 0.0)  # thumbs: the family's whole share
    assert hotspot_levels(0.05, False, implicit=False) == (0.05 / 4, 0.0)
    thumbs, evals = hotspot_levels(0.05, True)
    assert thumbs == evals == pytest.approx(0.05 / 10)
    levels = stats.split_alpha(0.05)
    shares = levels.global_drift + levels.cluster_drift + levels.regressions + levels.implicit
    assert shares + thumbs + evals == pytest.approx(0.05)


@pytest.fixture(scope="module")
def model() -> None:
    load_model("all-MiniLM-L6-v2")


def test_a_topic_failing_the_judge_is_flagged_with_no_thumbs_at_all(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: None
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(settings.data_dir))
    rng = random.Random(11)
    records = []
    for window, days in (("b", 2), ("c", 0)):
        for i in range(150):
            topic = ("password", "refund", "shipping")[i % 3]
            moment = NOW - timedelta(days=days, hours=rng.uniform(0.5, 20))
            wrong = window == "c" and topic == "refund"
            records.append(
                Record(
                    id=f"{topic}-{window}{i}",
                    timestamp=moment,
                    endpoint="support-chat",
                    prompt=question(rng, topic),
                    response="Refunds follow the outdated 2025 policy."
                    if wrong
                    else "Here is what you can do.",
                    latency_ms=300.0,
                )
            )
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        session.add_all(records)
        session.commit()
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        code = main(["evaluate", "--config", str(config), "--database-url", settings.database_url])
        assert code == 0 and len(judge.requests) == 300
    with Session(engine) as session:
        assert session.query(Feedback).count() == 0  # not a single thumb
    engine.dispose()
    report = run_analysis(
        settings, parse_interval(BASELINE), parse_interval(CURRENT), progress=False
    ).to_json()
    flagged = [c for c in report["clusters"] if c["evaluations"]["correctness"]["flagged"]]
    assert flagged, "the refund cluster should be an evaluator hotspot"
    for cluster in flagged:
        entry = cluster["evaluations"]["correctness"]
        assert entry["fail_rate"] > 0.8 and entry["lift"] >= 1.5 and entry["q_value"] <= 0.05 / 6
        assert not cluster["hotspot"]["flagged"] and cluster["feedback"]["rated"] == 0
    assert set(flagged[0]["evaluations"]["correctness"]) == {
        "evaluated", "failed", "fail_rate", "lift", "p_value", "q_value", "flagged"
    }  # fmt: skip
    summary = report["evaluators"]["correctness"]
    assert summary["evaluated"] == 150 and summary["failed"] == 50
    assert summary["agreement"] == {
        "n": 0,
        "kappa": None,
        "kappa_ci": None,
        "confusion": {"pass": {"up": 0, "down": 0}, "fail": {"up": 0, "down": 0}},
    }
    # the (extractive) summary shows failing answers with the judge's justification
    text = flagged[0]["summary"]["text"]
    assert "Evaluator correctness:" in text and "answers failed" in text
    assert 'Failed by correctness: "' in text and "outdated 2025 policy" in text
    kinds = {(a["kind"], a["cluster_id"]) for a in report["alerts"]}
    assert {("eval_hotspot", c["id"]) for c in flagged} <= kinds
    assert not any(k == "hotspot" for k, _ in kinds)


def test_the_summary_prompt_shows_failing_answers_only_when_there_are_some() -> None:
    from dataclasses import replace

    from llmscope.analysis.prompts import ClusterBrief, Example, render_summary_prompt

    plain = ClusterBrief(
        cluster_id=3, size=40, current_count=30, baseline_count=10, keywords=["refund"],
        baseline_share="1.0%", current_share="9.0%", drift_kind="grew", drift_flagged=True,
        down_rate="n/a", rated=0, lift="n/a", hotspot_flagged=False, latency_p50="400",
        latency_p95="900", templates="none",
    )  # fmt: skip
    before = render_summary_prompt(plain)[1]["content"]
    assert "evaluator" not in before
    judged = replace(
        plain,
        evaluations=["- evaluator correctness: 17 of 20 answers failed (85.0%, lift 3.20x, "
                     "flagged as a hotspot: yes)"],
        judge_failures=[Example("Can I return shoes?", "Within 14 days.", ("correctness",),
                                "States the outdated 2025 policy.")],
    )  # fmt: skip
    after = render_summary_prompt(judged)[1]["content"]
    assert "- evaluator correctness: 17 of 20 answers failed" in after
    assert 'Failed by correctness: "States the outdated 2025 policy."' in after
    numbers, rest = after.split("Representative requests", 1)
    assert "evaluator correctness" in numbers and "Failed by" in rest.split("For comparison")[0]


def test_evaluations_from_outside_are_tested_per_cluster_beside_the_configured_one(
    settings: Settings, model: None
) -> None:
    """Verdicts posted by a team's own pipeline are the evaluator ``NAME@external``: tested per
    cluster, agreement with the users' thumbs included, apart from a configured evaluator that
    shares the name."""
    rng = random.Random(5)
    records = []
    for window, days in (("b", 2), ("c", 0)):
        for i in range(150):
            topic = ("password", "refund", "shipping")[i % 3]
            moment = NOW - timedelta(days=days, hours=rng.uniform(0.5, 20))
            records.append(
                Record(
                    id=f"{topic}-{window}{i}",
                    timestamp=moment,
                    endpoint="support-chat",
                    prompt=question(rng, topic),
                    response="Here is what you can do.",
                    latency_ms=300.0,
                )
            )
    ids = [r.id for r in records]
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        session.add_all(records)
        session.commit()
        # the configured evaluator of the same name passes everything
        session.add_all(
            Evaluation(record_id=i, evaluator="correctness", version="3f9a1c2b", status="done",
                       score=5.0, passed=True)
            for i in ids
        )  # fmt: skip
        session.commit()
    thumbs = []
    with TestClient(create_app(settings)) as client:
        for record_id in ids:
            wrong = record_id.startswith("refund-c")
            body = {"evaluator": "correctness", "label": "incorrect" if wrong else "correct"}
            answer = client.post(f"/api/v1/records/{record_id}/evaluations", json=body)
            assert answer.status_code == 201
            if record_id.endswith(("0", "7")):  # some users rate: down exactly where it failed
                thumbs.append(wrong)
                value = "down" if wrong else "up"
                answer = client.post(f"/api/v1/records/{record_id}/feedback", json={"value": value})
                assert answer.status_code == 201
    engine.dispose()
    report = run_analysis(
        settings, parse_interval(BASELINE), parse_interval(CURRENT), progress=False
    ).to_json()
    assert set(report["evaluators"]) == {"correctness", "correctness@external"}
    outside = report["evaluators"]["correctness@external"]
    assert outside["version"] == "external"
    assert outside["evaluated"] == 150 and outside["failed"] == 50
    assert outside["agreement"]["n"] == len(thumbs) and outside["agreement"]["kappa"] == 1.0
    assert report["evaluators"]["correctness"]["failed"] == 0
    flagged = [c for c in report["clusters"] if c["evaluations"]["correctness@external"]["flagged"]]
    assert flagged, "the refund cluster should be an evaluator hotspot"
    assert all(not c["evaluations"]["correctness"]["flagged"] for c in report["clusters"])
    assert flagged[0]["evaluations"]["correctness@external"]["fail_rate"] > 0.8
