"""How sessions end, per cluster: counted on hand-built sessions whose right answer is worked out
by hand (in the comments), then on a real run with the real model, through the report, the
stored cluster stats and the cluster page's line."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import load_model
from llmscope.analysis.implicit import conversation_keys, detect_turns
from llmscope.analysis.job import run_analysis
from llmscope.analysis.session_outcomes import session_ends, session_outcomes
from llmscope.analysis.windows import parse_interval
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Feedback, Record, RunCluster
from llmscope.report import RunReport
from tests.analysis.traffic import BASELINE, CURRENT, NOW, TOPICS, question
from tests.conftest import BACKENDS, _truncate_all

# Texts as unit vectors: 0 and 1 are one question in two wordings (cosine 0.8, a rephrase at
# the default threshold 0.55); 2 and 3 are other topics (cosine 0 with everything else).
VECTORS = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)

# (session, user, seconds, text, window, latest thumb, cluster), in the run's order.
ROWS: list[tuple[str | None, str | None, float, int, str, bool | None, int]] = [
    ("A", None, 0, 0, "current", None, 0),  # 0
    ("A", None, 60, 1, "current", None, 0),  # 1: A's last turn, rephrases 0 -> ended rephrase
    ("B", None, 10, 2, "current", True, 0),  # 2: thumbs-down, but not B's last turn
    ("B", None, 100, 3, "current", True, 1),  # 3: B's last turn, down -> ended thumbs-down (1)
    ("C", None, 20, 0, "current", None, 0),  # 4
    ("C", None, 30, 1, "current", True, 0),  # 5: C's last: a rephrase AND down -> badly once
    ("D", None, 5, 2, "current", False, 0),  # 6: one turn, thumbs-up -> ended well
    ("E", None, -9000, 0, "baseline", True, 0),  # 7: last turn in the baseline: not counted
    ("F", None, 0, 0, "current", None, 0),  # 8
    ("F", None, 10_000, 1, "current", None, 0),  # 9: same question, past the 600 s window: well
    (None, "U", 0, 0, "current", True, 0),  # 10: a user, no session: in no session
    (None, "U", 10, 1, "current", None, 0),  # 11
    ("G", None, 50, 2, "current", True, 0),  # 12: same time as 13, loaded first
    ("G", None, 50, 3, "current", None, 1),  # 13: G's last turn (ties: run order), unrated
]


def _run(rows: list[Any], *, with_turns: bool = True) -> Any:
    records = [
        {"session_id": s, "user_id": u, "timestamp": float(t), "window": w}
        for s, u, t, _, w, _, _ in rows
    ]
    turns = detect_turns(
        conversation_keys(records),
        np.array([r[2] for r in rows], dtype=float),
        np.array([r[3] for r in rows], dtype=np.int64),
        VECTORS,
        window_seconds=600,
        min_similarity=0.55,
    )
    is_current = np.array([r[4] == "current" for r in rows])
    return session_ends(records, is_current, [r[5] for r in rows], turns if with_turns else None)


def _members(cluster: int) -> np.ndarray:
    return np.array([i for i, r in enumerate(ROWS) if r[6] == cluster])


def test_a_session_counts_in_the_cluster_of_its_last_turn() -> None:
    ends = _run(ROWS)
    # cluster 0 holds the last turns of A (1), C (5), D (6) and F (9); E ended in the baseline,
    # B and G in cluster 1, U is no session. A and C ended with a rephrase, C with a thumbs-down.
    zero = session_outcomes(ends, _members(0))
    assert (zero.sessions, zero.ended_thumbs_down, zero.ended_rephrase, zero.ended_badly) == (
        4,
        1,
        2,
        2,
    )
    assert zero.share == 0.5
    assert zero.examples == ["A", "C"]  # newest last turn first: A at 60 s, C at 30 s
    # cluster 1: B (down) and G (its last turn, 13, unrated; 12's thumbs-down does not count)
    one = session_outcomes(ends, _members(1))
    assert (one.sessions, one.ended_thumbs_down, one.ended_rephrase, one.ended_badly) == (
        2,
        1,
        0,
        1,
    )
    assert one.share == 0.5 and one.examples == ["B"]
    assert ends.last.tolist() == [i in {1, 3, 5, 6, 9, 13} for i in range(len(ROWS))]


def test_without_rephrase_flags_only_thumbs_end_a_session_badly() -> None:
    zero = session_outcomes(_run(ROWS, with_turns=False), _members(0))
    assert (zero.sessions, zero.ended_thumbs_down, zero.ended_rephrase, zero.ended_badly) == (
        4,
        1,
        0,
        1,
    )
    assert zero.examples == ["C"]


def test_a_cluster_without_sessions_has_no_share() -> None:
    ends = _run(ROWS)
    empty = session_outcomes(ends, np.array([7, 10, 11], dtype=np.int64))  # E, U, U
    assert (empty.sessions, empty.ended_badly, empty.share, empty.examples) == (0, 0, None, [])
    assert _run([r for r in ROWS if r[0] is None]).any is False
    assert ends.any is True


def test_a_later_turn_in_the_baseline_does_not_hide_the_current_one() -> None:
    # Runs hold the baseline before the current window; a session's newest turn is its last
    # wherever it lies: with its newest turn in the current window it counts there.
    rows = [
        ("H", None, -5000, 2, "baseline", None, 0),
        ("H", None, 40, 3, "current", True, 1),
    ]
    ends = _run(rows)
    assert session_outcomes(ends, np.array([0])).sessions == 0
    found = session_outcomes(ends, np.array([1]))
    assert (found.sessions, found.ended_thumbs_down, found.share) == (1, 1, 1.0)


# --- a real run ------------------------------------------------------------------------------


def _seed(engine: Any) -> dict[str, int]:
    """One-turn sessions on three topics in both windows, and in the current window: 12
    password sessions that ask their question, then the same again with another opening (ended
    with a rephrase), 10 refund sessions rated down on their only turn, 3 shipping sessions
    rated down on their first turn and asking about another topic after (ended well), 30
    one-turn sessions left unrated. Returns the expected totals over the clusters of the cut:
    12 + 10 + 3 + 30 = 55 sessions, 10 thumbs-down, 12 rephrases, 22 badly."""
    rng = random.Random(11)
    records: list[Record] = []
    feedback: list[Feedback] = []
    day = NOW - timedelta(hours=23)

    def add(sid: str, moment: datetime, text: str, down: bool = False) -> None:
        rid = f"{sid}-{sum(r.session_id == sid for r in records)}"
        records.append(Record(id=rid, timestamp=moment, prompt=text, response="ok", session_id=sid))
        if down:
            feedback.append(Feedback(record_id=rid, thumb="down", created_at=NOW))

    for i in range(60):
        topic = ("password", "refund", "shipping")[i % 3]
        add(f"b{i}", NOW - timedelta(days=2, hours=i), question(rng, topic))
    for i in range(12):
        asked = rng.choice(TOPICS["password"])
        add(f"r{i}", day + timedelta(minutes=30 * i), asked)
        add(f"r{i}", day + timedelta(minutes=30 * i, seconds=40), f"Sorry, again: {asked}")
    for i in range(10):
        add(f"d{i}", day + timedelta(minutes=30 * i + 7), question(rng, "refund"), down=True)
    for i in range(3):
        moment = day + timedelta(minutes=30 * i + 11)
        add(f"s{i}", moment, question(rng, "shipping"), down=True)
        add(f"s{i}", moment + timedelta(seconds=50), question(rng, "refund"))
    for i in range(30):
        topic = ("password", "refund", "shipping")[i % 3]
        add(f"p{i}", day + timedelta(minutes=30 * i + 17), question(rng, topic))
    with Session(engine) as session:
        session.add_all(records)
        session.flush()
        session.add_all(feedback)
        session.commit()
    return {"sessions": 55, "ended_thumbs_down": 10, "ended_rephrase": 12, "ended_badly": 22}


@pytest.fixture(scope="module", params=BACKENDS)
def analysed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, RunReport, dict[str, int]]]:
    load_model("all-MiniLM-L6-v2")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'store.db'}"
    else:
        url = request.getfixturevalue("_pg_database")
        _truncate_all(url)
    engine = make_engine(url)
    upgrade(engine)
    expected = _seed(engine)
    engine.dispose()
    settings = Settings(database_url=url, data_dir=Path(tmp_path_factory.mktemp("data")))
    report = run_analysis(
        settings, parse_interval(BASELINE), parse_interval(CURRENT), now=NOW, progress=False
    )
    yield settings, report, expected


def test_the_report_counts_every_session_once(
    analysed: tuple[Settings, RunReport, dict[str, int]],
) -> None:
    _, report, expected = analysed
    cut = [c for c in report.to_json()["clusters"] if c.get("parent") is None]
    for c in cut:
        assert set(c["sessions"]) == {
            "sessions",
            "ended_thumbs_down",
            "ended_rephrase",
            "ended_badly",
            "share",
        }
        got = c["sessions"]
        assert got["share"] == (got["ended_badly"] / got["sessions"] if got["sessions"] else None)
    totals = {key: sum(c["sessions"][key] for c in cut) for key in expected}
    assert totals == expected


def test_the_cluster_stats_keep_examples_of_sessions_that_ended_badly(
    analysed: tuple[Settings, RunReport, dict[str, int]],
) -> None:
    settings, report, _ = analysed
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            stats = session.scalars(
                select(RunCluster.stats).where(RunCluster.run_id == report.run_id)
            ).all()
    finally:
        engine.dispose()
    examples = [sid for s in stats for sid in s["sessions"]["examples"]]
    # only sessions that ended badly: rephrased (r) or rated down (d), never s, p or b
    assert examples and all(sid[0] in "rd" for sid in examples)


def test_the_cluster_page_says_how_its_sessions_ended(
    analysed: tuple[Settings, RunReport, dict[str, int]],
) -> None:
    from dash import dcc

    from llmscope.dashboard.app import render_path
    from tests.dashboard.test_app import by_id, text_of, walk

    settings, report, _ = analysed
    worst = max(
        (c for c in report.clusters if c.parent is None and c.sessions is not None),
        key=lambda c: c.sessions.ended_badly if c.sessions else 0,
    )
    s = worst.sessions
    assert s is not None and s.ended_badly > 0
    engine = make_engine(settings.database_url)
    try:
        layout = render_path(engine, f"/clusters/{worst.id}", f"?run={report.run_id}")
    finally:
        engine.dispose()
    line = by_id(layout, "cluster-sessions")
    assert text_of(line).startswith(
        f"{s.ended_badly} of its {s.sessions} sessions ended badly: "
        f"{s.ended_thumbs_down} with a thumbs-down, {s.ended_rephrase} with a rephrase"
    )
    links = [c.href for c in walk(line) if isinstance(c, dcc.Link)]
    assert links and all(h.startswith("/sessions/") for h in links)
    assert all(h.split("?")[0].split("/")[-1][0] in "rd" for h in links)
