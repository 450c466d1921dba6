"""Cluster summaries: the LLM's JSON is stored, bad answers fall back honestly, costs bounded."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.summaries import SummaryError, parse_summary, summarize_run
from llmscope.config import Settings
from llmscope.db.models import AnalysisRun, RunCluster, Summary
from tests.analysis.http_fakes import fake_llm, good, missing_keys, prose, slow
from tests.analysis.seeding import ClusterSeed, Down, seed_run, unit
from tests.conftest import count_rows, free_port

REFUNDS = [
    ("Can I get a refund for my annual plan?", "Refunds are possible within 14 days."),
    ("How do refunds work after cancelling?", "Refunds are possible within 14 days."),
    ("Refund for a duplicate charge please", "Refunds are possible within 14 days."),
    ("Where is my refund?", "Refunds are possible within 14 days."),
]


def three_clusters() -> list[ClusterSeed]:
    return [
        ClusterSeed(
            id=0,
            centroid=unit(1, 0),
            current=REFUNDS,
            baseline=[("Old refund question from last week", "Refunds within 30 days.")],
            keywords=["refund", "charge", "plan"],
            hotspot_flagged=True,
            downs=[
                Down(0, ["incorrect", "outdated"], "policy changed to 30 days"),
                Down(2, ["incorrect"], ""),
            ],
        ),
        ClusterSeed(
            id=1,
            centroid=unit(0, 1),
            current=[("Does the app support dark mode?", "Yes, in Settings.")] * 3,
            keywords=["dark", "mode"],
            drift_kind="new",
            drift_flagged=True,
        ),
        ClusterSeed(
            id=2,
            centroid=unit(0, 0, 1),
            current=[("How do I reset my password?", "Use the reset link.")] * 2,
            baseline=[("Password reset link expired", "Request a new one.")] * 4,
            keywords=["password", "reset"],
        ),
    ]


def llm_settings(settings: Settings, url: str, **overrides: object) -> Settings:
    return settings.model_copy(
        update={
            "summary_llm_url": url,
            "summary_llm_model": "fake-model",
            "summary_timeout_s": 2.0,
            **overrides,
        }
    )


def stored(engine: Engine, run_id: str) -> tuple[dict[int, dict], dict[int, dict]]:
    """(run_clusters.summary, report clusters[i].summary) by cluster id."""
    with Session(engine) as session:
        rows = {
            c.cluster_id: c.summary
            for c in session.scalars(select(RunCluster).where(RunCluster.run_id == run_id))
        }
        report = session.get(AnalysisRun, run_id).report  # type: ignore[union-attr]
    return rows, {c["id"]: c["summary"] for c in report["clusters"]}


def test_parse_summary_accepts_fenced_json_and_rejects_the_rest() -> None:
    fenced = '```json\n{"title":"T","summary":"S","root_cause":"R","suggested_fix":"F"}\n```'
    assert parse_summary(fenced) == {
        "title": "T",
        "summary": "S",
        "root_cause": "R",
        "suggested_fix": "F",
    }
    for bad in ("", "no json here", '["a list"]', '{"title": "T", "summary": 3}'):
        with pytest.raises(SummaryError):
            parse_summary(bad)


def test_llm_summaries_are_stored_internal_and_cached(settings: Settings, engine: Engine) -> None:
    run_id = seed_run(engine, three_clusters())
    with fake_llm() as llm:
        config = llm_settings(settings, llm.url)
        with Session(engine) as session:
            summarize_run(session, run_id, config)
            session.commit()
        assert len(llm.requests) == 3  # flagged: 0 and 1; largest few: 2 as well

        rows, report = stored(engine, run_id)
        for cid in (0, 1, 2):
            assert rows[cid] == report[cid]
            assert rows[cid]["generated_by"] == "llm:fake-model"
            assert rows[cid]["title"] == f"Refund questions {cid}"
            assert rows[cid]["text"].startswith(f"Users of cluster {cid} ask")
            assert rows[cid]["suggested_fix"].startswith("Update the refund section")

        hotspot = next(
            r for r in llm.requests if "Cluster 0 (" in r["body"]["messages"][1]["content"]
        )
        assert hotspot["headers"]["x-llmscope-internal"] == "true"
        assert hotspot["body"]["model"] == "fake-model"
        prompt = hotspot["body"]["messages"][1]["content"]
        # Representative prompts with responses, thumbs-down tags and comments, keywords,
        # the numbers, and the baseline sample are all in front of the LLM.
        assert "Can I get a refund for my annual plan?" in prompt
        assert "Answer: Refunds are possible within 14 days." in prompt
        assert 'thumbs-down (incorrect, outdated) - "policy changed to 30 days"' in prompt
        assert "Keywords: refund, charge, plan" in prompt
        assert "thumbs-down rate: 100.0% of 2 rated" in prompt
        assert "flagged as a hotspot: yes" in prompt
        assert "20.0% in the baseline window -> 44.4% now" in prompt
        assert "p50 400 ms, p95 950 ms" in prompt
        assert "Old refund question from last week" in prompt
        assert count_rows(engine, Summary) == 3

        # Unchanged clusters are not summarised again.
        with Session(engine) as session:
            summarize_run(session, run_id, config)
            session.commit()
        assert len(llm.requests) == 3
        assert stored(engine, run_id)[0] == rows

        # Nor are the same clusters found again by a later run.
        later = seed_run(engine, three_clusters())
        with Session(engine) as session:
            summarize_run(session, later, config)
            session.commit()
        assert len(llm.requests) == 3
        assert stored(engine, later)[0] == rows


def test_bad_json_is_retried_once_with_the_complaint(settings: Settings, engine: Engine) -> None:
    run_id = seed_run(engine, three_clusters()[:1])
    with fake_llm(script=[prose]) as llm:
        with Session(engine) as session:
            summarize_run(session, run_id, llm_settings(settings, llm.url))
            session.commit()
        assert len(llm.requests) == 2
        retry = llm.requests[1]["body"]["messages"]
        assert retry[-2]["role"] == "assistant" and "refunds" in retry[-2]["content"]
        assert "not usable (answer is not JSON)" in retry[-1]["content"]
    rows, _ = stored(engine, run_id)
    assert rows[0]["generated_by"] == "llm:fake-model"


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ([prose, prose], "answer is not JSON"),
        ([missing_keys, missing_keys], "lacks non-empty string keys"),
        ([slow(3.0), slow(3.0)], "APITimeoutError"),
    ],
    ids=["not-json", "missing-keys", "timeout"],
)
def test_bad_answers_fall_back_to_extractive(
    settings: Settings, engine: Engine, script: list, reason: str
) -> None:
    run_id = seed_run(engine, three_clusters()[:1])
    with fake_llm(script=script, default=good) as llm:
        config = llm_settings(settings, llm.url, summary_timeout_s=0.5)
        with Session(engine) as session:
            summarize_run(session, run_id, config)
            session.commit()
        assert len(llm.requests) == 2
    rows, report = stored(engine, run_id)
    summary = rows[0]
    assert summary == report[0]
    assert summary["generated_by"] == "extractive"
    assert reason in summary["reason"]
    assert summary["title"] == "refund / charge / plan"
    assert "Can I get a refund for my annual plan?" in summary["text"]
    assert count_rows(engine, Summary) == 0  # a fallback is never cached as the LLM's answer


def test_without_an_llm_summaries_are_extractive_and_say_so(
    settings: Settings, engine: Engine
) -> None:
    run_id = seed_run(engine, three_clusters())
    with Session(engine) as session:
        summarize_run(session, run_id, settings)
        session.commit()
    rows, report = stored(engine, run_id)
    assert rows == report
    assert {s["generated_by"] for s in rows.values()} == {"extractive"}
    hot = rows[0]
    assert hot["reason"] == "no summary LLM configured"
    assert "Keywords: refund, charge, plan." in hot["text"]
    assert "Thumbs-down rate 100.0% of 2 rated (flagged hotspot)" in hot["text"]
    # The tags of its two thumbs-down answers, saying what they count (no count above 2).
    assert hot["root_cause"] == (
        "Tags on its 2 thumbs-down answers (both windows): incorrect (2), outdated (1)."
    )
    assert hot["suggested_fix"] is None
    assert rows[1]["root_cause"] is None  # no feedback, no claim


def test_caps_bound_the_llm_calls(settings: Settings, engine: Engine) -> None:
    run_id = seed_run(engine, three_clusters())
    with fake_llm() as llm:
        with Session(engine) as session:
            summarize_run(session, run_id, llm_settings(settings, llm.url, summary_max_clusters=1))
            session.commit()
        assert len(llm.requests) == 1
        rows, _ = stored(engine, run_id)
        assert rows[0]["generated_by"] == "llm:fake-model"  # the hotspot goes first
        assert rows[1]["reason"] == rows[2]["reason"] == "not among the clusters sent to the LLM"

        changed = three_clusters()
        for seed in changed:  # new content, so nothing comes from the cache
            seed.keywords = [*seed.keywords, "changed"]
        other = seed_run(engine, changed)
        with Session(engine) as session:
            config = llm_settings(settings, llm.url, summary_max_tokens_per_run=500)
            summarize_run(session, other, config)
            session.commit()
        assert len(llm.requests) == 1  # every prompt is over a 500-token budget
        rows, _ = stored(engine, other)
        assert rows[0]["reason"] == "summary token budget of the run is spent"


def test_unreachable_llm_is_tried_once_per_run(settings: Settings, engine: Engine) -> None:
    run_id = seed_run(engine, three_clusters())
    url = f"http://127.0.0.1:{free_port()}/v1"
    with Session(engine) as session:
        summaries = summarize_run(session, run_id, llm_settings(settings, url))
        session.commit()
    assert {s["generated_by"] for s in summaries.values()} == {"extractive"}
    assert "APIConnectionError" in summaries[0]["reason"]
    assert summaries[2]["reason"].startswith("LLM unavailable earlier in this run")
