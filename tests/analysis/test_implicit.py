"""Implicit feedback: which answers were rephrased or regenerated, and the per-cluster tests.

Detection is checked on hand-made unit vectors where the right answer is known; the tests on a
planted set of counts; the report, findings and export on a real run with the real model.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis import stats
from llmscope.analysis.embedding import load_model
from llmscope.analysis.findings import build_findings
from llmscope.analysis.implicit import (
    conversation_keys,
    detect_turns,
    rephrase_tests,
    turns_of_records,
)
from llmscope.analysis.job import run_analysis
from llmscope.analysis.verdicts import window_tests
from llmscope.analysis.windows import parse_interval
from llmscope.app.cli import main
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Record, RunCluster
from llmscope.report import RunReport
from tests.analysis.traffic import BASELINE, CURRENT, NOW, OPENINGS, TOPICS
from tests.conftest import BACKENDS, _truncate_all

# Four "texts" as unit vectors: 0 and 1 are one question in two wordings (cosine 0.8), 2 is
# another topic (cosine 0 with both), 3 is close to 0 but below the threshold (cosine 0.5).
VECTORS = np.array(
    [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [0.5, -math.sqrt(0.75), 0.0]]
)


def detect(
    keys: list[str | None], seconds: list[float], texts: list[int], window: float = 600.0
) -> Any:
    return detect_turns(
        keys, np.array(seconds), np.array(texts), VECTORS, window_seconds=window, min_similarity=0.6
    )


def test_a_similar_next_turn_within_the_window_is_a_rephrase() -> None:
    turns = detect(["s:a", "s:a"], [0, 60], [0, 1])
    assert turns.rephrased.tolist() == [True, False]
    assert turns.next_turn.tolist() == [1, -1]
    assert turns.similarity[0] == pytest.approx(0.8)
    assert turns.outcomes() == [True, False]


def test_too_late_too_different_or_another_conversation_is_no_rephrase() -> None:
    assert detect(["s:a", "s:a"], [0, 601], [0, 1]).rephrased.tolist() == [False, False]
    assert detect(["s:a", "s:a"], [0, 600], [0, 1]).rephrased.tolist() == [True, False]
    assert detect(["s:a", "s:a"], [0, 60], [0, 3]).rephrased.tolist() == [False, False]
    assert detect(["s:a", "s:b"], [0, 60], [0, 1]).rephrased.tolist() == [False, False]


def test_another_topic_in_between_ends_the_chance() -> None:
    turns = detect(["s:a"] * 3, [0, 30, 60], [0, 2, 1])
    assert turns.rephrased.tolist() == [False, False, False]
    assert turns.next_turn.tolist() == [1, 2, -1]


def test_turns_are_ordered_by_time_not_by_the_order_given() -> None:
    # Given out of order: the rephrase (t=60) is listed before the question it rephrases.
    turns = detect(["s:a", "s:a", "s:a"], [60, 0, 30], [1, 2, 0])
    assert turns.rephrased.tolist() == [False, False, True]
    assert turns.next_turn.tolist() == [-1, 2, 0]
    # Equal times keep the order given (the run loads by timestamp, then id).
    assert detect(["s:a", "s:a"], [5, 5], [0, 1]).rephrased.tolist() == [True, False]


def test_a_next_turn_in_the_same_cluster_needs_only_the_ratio_of_the_threshold() -> None:
    # Texts 0 and 3 are at cosine 0.5: below the plain threshold 0.6, above 0.8 * 0.6 = 0.48.
    def rule(labels: list[int], ratio: float = 0.8) -> list[bool]:
        turns = detect_turns(
            ["s:a", "s:a"],
            np.array([0.0, 60.0]),
            np.array([0, 3]),
            VECTORS,
            window_seconds=600,
            min_similarity=0.6,
            labels=np.array(labels),
            cluster_ratio=ratio,
        )
        return turns.rephrased.tolist()

    assert rule([4, 4]) == [True, False]  # one cluster: the clustering called it one topic
    assert rule([4, 5]) == [False, False]  # another cluster: the plain threshold
    assert rule([-1, -1]) == [False, False]  # noise is no cluster
    assert rule([4, 4], ratio=1.0) == [False, False]  # ratio 1: no allowance
    assert rule([4, 4], ratio=0.9) == [False, False]  # 0.54 > 0.5
    # without labels (or at ratio 1) the rule is the plain threshold, as before
    assert detect(["s:a", "s:a"], [0, 60], [0, 3]).rephrased.tolist() == [False, False]
    # a pair above the plain threshold is a rephrase wherever the turns are
    turns = detect_turns(
        ["s:a", "s:a"], np.array([0.0, 60.0]), np.array([0, 1]), VECTORS,
        window_seconds=600, min_similarity=0.6, labels=np.array([4, 5]), cluster_ratio=0.8,
    )  # fmt: skip
    assert turns.rephrased.tolist() == [True, False]


def test_a_run_reads_the_ratio_from_its_settings_and_the_clusters_from_its_labels() -> None:
    records = [
        {"id": "a", "session_id": "s", "timestamp": NOW},
        {"id": "b", "session_id": "s", "timestamp": NOW + timedelta(seconds=30)},
    ]
    texts = np.array([0, 3])  # cosine 0.5: below 0.55, above the default 0.4 x 0.55
    settings = Settings(database_url="sqlite://")
    one, two = np.array([7, 7]), np.array([7, 8])
    assert turns_of_records(records, texts, VECTORS, settings, one).rephrased.tolist() == [
        True,
        False,
    ]
    assert not turns_of_records(records, texts, VECTORS, settings, two).rephrased.any()
    assert not turns_of_records(records, texts, VECTORS, settings).rephrased.any()
    plain = Settings(database_url="sqlite://", rephrase_cluster_ratio=1.0)
    assert not turns_of_records(records, texts, VECTORS, plain, one).rephrased.any()


def test_the_user_stands_in_for_a_missing_session_and_no_key_is_no_conversation() -> None:
    records = [
        {"session_id": "x", "user_id": "u"},
        {"session_id": None, "user_id": "u"},
        {"session_id": None, "user_id": None},
    ]
    assert conversation_keys(records) == ["s:x", "u:u", None]
    keys = conversation_keys(
        [{"user_id": "u"}, {"user_id": "u"}, {"session_id": "other", "user_id": "u"}, {}, {}]
    )
    turns = detect(keys, [0, 30, 40, 50, 60], [0, 1, 0, 0, 1])
    assert turns.rephrased.tolist() == [True, False, False, False, False]
    assert turns.outcomes() == [True, False, False, None, None]


def test_the_identical_prompt_again_is_a_regeneration_not_a_rephrase() -> None:
    turns = detect(["s:a", "s:a", "s:a"], [0, 10, 20], [0, 0, 1])
    assert turns.regenerated.tolist() == [True, False, False]
    assert turns.rephrased.tolist() == [False, True, False]
    assert detect(["s:a", "s:a"], [0, 700], [0, 0]).regenerated.tolist() == [False, False]


def _outcomes(rng: np.random.Generator, labels: np.ndarray, rate: np.ndarray) -> list[bool | None]:
    in_conversation = rng.random(len(labels)) < 0.9
    rephrased = rng.random(len(labels)) < rate
    return [bool(r) if c else None for c, r in zip(in_conversation, rephrased, strict=True)]


def test_a_cluster_rephrased_more_than_the_rest_is_flagged_and_only_it() -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(8), 150)
    is_current = rng.random(len(labels)) < 0.5
    # Cluster 2: 35% of answers rephrased in both windows; cluster 5: 10% before, 40% now.
    rate = np.full(len(labels), 0.1)
    rate[labels == 2] = 0.35
    rate[(labels == 5) & is_current] = 0.4
    settings = Settings(database_url="sqlite://")
    found = rephrase_tests(
        labels, 8, is_current, _outcomes(rng, labels, rate), settings, level=0.01
    )
    assert [c for c, r in enumerate(found) if r.flagged] == [2, 5]
    assert found[2].test.kind == "persistent" and found[5].test.kind == "emerging"
    assert found[5].current_rate is not None and found[5].current_rate > 0.3
    assert found[5].baseline_rate is not None and found[5].baseline_rate < 0.2


def test_counts_and_rates_are_the_rephrased_records_of_each_window() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    is_current = np.array([False, True] * 10)
    outcomes: list[bool | None] = [True, True, False, False, None, True] + [False] * 14
    settings = Settings(database_url="sqlite://")
    [zero, one] = rephrase_tests(labels, 2, is_current, outcomes, settings, level=0.05)
    # Cluster 0 baseline: records 0, 2, 4(None), 6, 8 -> 1 of 4; current: 1, 3, 5, 7, 9 -> 2 of 5.
    assert (zero.baseline, zero.current) == (1, 2)
    assert zero.baseline_rate == pytest.approx(1 / 4) and zero.current_rate == pytest.approx(2 / 5)
    assert (one.baseline, one.current, one.current_rate) == (0, 0, 0.0)


def test_the_implicit_family_takes_a_fifth_of_alpha_only_when_it_can_test() -> None:
    assert stats.split_alpha(0.05).implicit == pytest.approx(0.01)
    assert stats.split_alpha(0.05).hotspots == pytest.approx(0.01)
    closed = stats.split_alpha(0.05, implicit=False)
    assert (closed.implicit, closed.hotspots) == (0.0, pytest.approx(0.0125))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    is_current = rng.random(400) < 0.5
    vectors = rng.normal(size=(400, 8))
    rate = np.where(labels == 1, 0.5, 0.05)
    settings = Settings(database_url="sqlite://")
    args = (labels, 4, vectors, is_current, [None] * 400, settings)
    flagged = window_tests(*args, rephrased=_outcomes(rng, labels, rate))
    assert [r.flagged for r in flagged.rephrase] == [False, True, False, False]
    assert flagged.flagged  # a rephrase hotspot is a flag of the run
    assert window_tests(*args).rephrase == []
    assert window_tests(*args, rephrased=[None] * 400).rephrase == []


# --- a real run: report, findings, record flags, export --------------------------------------


@pytest.fixture(scope="session")
def model() -> None:
    load_model("all-MiniLM-L6-v2")


def _seed(engine: Any) -> None:
    """Sessions of one or two turns. Refund answers are rephrased in the current window (60%
    of sessions, 5% in the baseline); other topics' second turns change topic. One password
    session sends its first prompt twice (a regeneration). No thumbs at all."""
    rng = random.Random(5)
    records: list[Record] = []
    topics = ("password", "refund", "shipping")
    for window, start, hours in (
        ("b", NOW - timedelta(days=8), 160),
        ("c", NOW - timedelta(days=1), 23),
    ):
        for i in range(180):
            topic = topics[i % 3]
            moment = start + timedelta(hours=rng.uniform(0.5, hours))
            first = rng.choice(TOPICS[topic])
            sid = f"{window}{i}"
            records.append(_record(f"{sid}-1", sid, moment, rng.choice(OPENINGS) + first))
            again = 0.6 if window == "c" else 0.05
            if topic == "refund" and rng.random() < again:
                other = rng.choice([q for q in TOPICS["refund"] if q != first])
                second = other
            elif i % 2:
                second = rng.choice(TOPICS[topics[(i + 1) % 3]])
            else:
                continue
            later = moment + timedelta(seconds=rng.uniform(20, 300))
            records.append(_record(f"{sid}-2", sid, later, rng.choice(OPENINGS) + second))
    first_of = records[0]
    records.append(
        _record("regen", str(first_of.session_id), first_of.timestamp + timedelta(seconds=5),
                str(first_of.prompt))
    )  # fmt: skip
    with Session(engine) as session:
        session.add_all(records)
        session.commit()


def _record(record_id: str, session_id: str, moment: Any, text: str) -> Record:
    return Record(
        id=record_id,
        timestamp=moment,
        endpoint="support-chat",
        model="gpt-4o-mini",
        prompt=text,
        response=f"An answer to: {text}",
        session_id=session_id,
        user_id=f"user-{session_id}",
    )


@pytest.fixture(scope="module", params=BACKENDS)
def analysed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: None
) -> Iterator[tuple[Settings, RunReport]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('implicit') / 'store.db'}"
    else:
        url = request.getfixturevalue("_pg_database")
        _truncate_all(url)
    engine = make_engine(url)
    upgrade(engine)
    _seed(engine)
    engine.dispose()
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("data"))
    report = run_analysis(
        settings, parse_interval(BASELINE), parse_interval(CURRENT), now=NOW, progress=False
    )
    yield settings, report


def _refund_cluster(report: RunReport) -> int:
    cut = [c for c in report.clusters if c.parent is None]
    return max(
        cut, key=lambda c: sum("refund" in k for k in c.keywords) + ("refund" in c.keywords)
    ).id


def test_the_report_carries_each_clusters_rephrase_rate(
    analysed: tuple[Settings, RunReport],
) -> None:
    _, report = analysed
    data = report.to_json()
    for cluster in data["clusters"]:
        if cluster.get("parent") is not None:
            assert "implicit" not in cluster
            continue
        rephrase = cluster["implicit"]["rephrase"]
        assert {"current_rate", "baseline_rate", "current", "baseline", "p_value", "q_value",
                "flagged"} <= set(rephrase)  # fmt: skip
    refund = report.cluster(_refund_cluster(report))
    assert refund is not None and refund.implicit is not None
    assert refund.implicit.rephrase.flagged
    assert refund.implicit.rephrase.current > refund.implicit.rephrase.baseline
    others = [c for c in report.clusters if c.parent is None and c.id != refund.id and c.implicit]
    assert others and not any(c.implicit.rephrase.flagged for c in others if c.implicit)
    kinds = [(f.kind, f.cluster_id) for f in report.findings]
    assert ("rephrase_hotspot", refund.id) in kinds
    assert not any(k == "hotspot" for k, _ in kinds)  # no thumbs at all
    message = next(f.message for f in report.findings if f.kind == "rephrase_hotspot")
    assert "asked the same question again in other words" in message
    assert build_findings(RunReport.from_stored(data)) == report.findings


def test_export_carries_the_session_and_the_record_flags(
    analysed: tuple[Settings, RunReport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = analysed
    out = tmp_path / "rows.jsonl"
    assert main(["export", "clusters", "--format", "jsonl", "-o", str(out),
                 "--database-url", settings.database_url]) == 0  # fmt: skip
    rows = {r["record_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["c1-1"]["session_id"] == "c1"
    assert {"rephrased", "regenerated"} <= set(rows["c1-1"])
    rephrased = {r for r, row in rows.items() if row["rephrased"]}
    assert rephrased and all(r.endswith("-1") for r in rephrased)
    regenerated = {r for r, row in rows.items() if row["regenerated"]}
    assert regenerated == {"b0-1"}
    csv_out = tmp_path / "rows.csv"
    assert main(["export", "clusters", "-o", str(csv_out),
                 "--database-url", settings.database_url]) == 0  # fmt: skip
    header = csv_out.read_text().splitlines()[0].split(",")
    assert header == ["record_id", "cluster_id", "window", "subcluster_id", "session_id",
                      "rephrased", "regenerated"]  # fmt: skip


def test_the_cluster_page_shows_answer_then_rephrase_and_the_record_its_flag(
    analysed: tuple[Settings, RunReport],
) -> None:
    from llmscope.dashboard.app import render_path
    from tests.dashboard.test_app import by_id, text_of

    settings, report = analysed
    refund = _refund_cluster(report)
    engine = make_engine(settings.database_url)
    try:
        layout = render_path(engine, f"/clusters/{refund}", f"?run={report.run_id}")
        pairs = by_id(layout, "cluster-rephrases")
        assert len(pairs.children) == 5
        with Session(engine) as session:
            first = pairs.children[0]
            links = [c.href.split("?")[0] for c in _links(first)]
            asked, then = (session.get(Record, h.rsplit("/", 1)[1]) for h in links)
            assert asked is not None and then is not None
            assert asked.session_id == then.session_id and then.timestamp > asked.timestamp
            shown = text_of(first)
            assert str(asked.prompt) in shown and str(asked.response) in shown
            assert str(then.prompt) in shown
        assert "Rephrased" in text_of(by_id(layout, "cluster-stats"))
        page = render_path(engine, f"/records/{asked.id}", f"?run={report.run_id}")
        assert by_id(page, "record-rephrased").href.startswith(f"/records/{then.id}")
    finally:
        engine.dispose()


def _links(node: Any) -> list[Any]:
    from dash import dcc

    from tests.dashboard.test_app import walk

    return [c for c in walk(node) if isinstance(c, dcc.Link)]


def test_the_record_api_says_what_the_latest_run_found_about_the_next_turn(
    analysed: tuple[Settings, RunReport],
) -> None:
    from fastapi.testclient import TestClient

    from llmscope.app.server import create_app

    settings, report = analysed
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            stats = session.scalars(
                select(RunCluster.stats).where(RunCluster.run_id == report.run_id)
            ).all()
    finally:
        engine.dispose()
    rephrased = {r for s in stats for r in ((s or {}).get("implicit") or {}).get("rephrased", {})}
    assert rephrased and "b0-1" not in rephrased
    with TestClient(create_app(settings)) as client:
        flags = {
            record_id: (body["rephrased"], body["regenerated"])
            for record_id in (*sorted(rephrased)[:3], "b0-1", "regen")
            for body in [client.get(f"/api/v1/records/{record_id}").json()]
        }
        assert client.get("/api/v1/records/nobody").status_code == 404
    assert flags.pop("b0-1") == (False, True)  # its prompt was sent again: regenerated
    assert flags.pop("regen") == (False, False)  # the last turn: nothing follows it
    assert set(flags.values()) == {(True, False)}
