"""``llmscope evaluate`` end to end: a fake judge behind the gateway, a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from llmscope.app.cli import main
from llmscope.db import make_engine, make_sessionmaker
from llmscope.db.models import Evaluation, Record
from tests.analysis.http_fakes import fake_llm
from tests.conftest import free_port
from tests.evaluate.evaluations.support import (
    JUDGE,
    garbage,
    grade,
    seed,
    slow_grade,
    support_records,
    write_config,
)

BUILTINS = """  - {name: refusal, type: refusal}
  - {name: short, type: length, max_words: 9}
  - {name: slow, type: latency, max_ms: 410}
"""


def evaluations(url: str) -> list[Evaluation]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(Evaluation).order_by(Evaluation.record_id)))
    engine.dispose()
    return rows


def internal_records(url: str) -> list[Record]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(Record).where(Record.internal.is_(True))))
    engine.dispose()
    return rows


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_judges_and_checks_once_and_a_second_run_calls_no_judge(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    seed(database_url, support_records(20, outdated_every=4))
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE + BUILTINS)
        args = ["--config", str(config), "--database-url", database_url, "--json"]
        code, out, err = run(capsys, *args)
        assert code == 0, err
        outcome = json.loads(out)["evaluators"]
        assert outcome["correctness"]["evaluated"] == 20
        assert outcome["correctness"]["failed"] == 5
        assert outcome["correctness"]["tokens"] == 20 * 380
        assert outcome["short"]["failed"] == 15  # the 10-word good answers are too long
        assert outcome["slow"]["evaluated"] == 20 and outcome["slow"]["failed"] == 9  # > 410 ms
        assert outcome["refusal"]["failed"] == 0
        assert len(judge.requests) == 20
        # the judge saw the definition, the rubric, the example and the answer
        system = judge.requests[0]["body"]["messages"][0]["content"]
        assert "policy in force today" in system and "Can I return shoes?" in system

        code, out, _ = run(capsys, *args)
        assert code == 0
        again = json.loads(out)["evaluators"]
        assert len(judge.requests) == 20  # no judge call the second time
        assert again["correctness"]["evaluated"] == 0 and again["correctness"]["already"] == 20
        assert again["refusal"]["already"] == 20

    rows = [r for r in evaluations(database_url) if r.evaluator == "correctness"]
    assert len(rows) == 20 and all(r.status == "done" for r in rows)
    failing = {r.record_id for r in rows if r.passed is False}
    assert failing == {f"r-{i:05d}" for i in range(0, 20, 4)}
    assert all(
        r.score == 1.0 and "outdated" in (r.justification or "") for r in rows if not r.passed
    )
    assert all(r.judge_model == "judge-model" and r.input_tokens == 300 for r in rows)
    # the judge's calls are recorded, internal, tagged, and never judged themselves
    calls = internal_records(database_url)
    assert len(calls) == 20
    assert all(c.tags and c.tags["llmscope.evaluator"] == "correctness" for c in calls)
    judged = {r.record_id for r in evaluations(database_url)}
    assert not judged & {c.id for c in calls}
    assert {r.judge_record_id for r in rows} == {c.id for c in calls}


def test_a_new_version_is_judged_again_and_results_are_per_version(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    seed(database_url, support_records(6))
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        args = ["--config", str(config), "--database-url", database_url]
        assert run(capsys, *args)[0] == 0
        write_config(
            tmp_path / "gw.yaml", judge.url, JUDGE.replace("pass_threshold: 3", "pass_threshold: 4")
        )
        assert run(capsys, *args)[0] == 0
        assert len(judge.requests) == 12
    versions = {r.version for r in evaluations(database_url)}
    assert len(versions) == 2


def test_garbage_answers_are_retried_once_then_stored_as_errors(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLMSCOPE_EVAL_CONCURRENCY", "1")  # the script is served in order
    seed(database_url, support_records(3))
    with fake_llm(script=[garbage, grade], default=garbage) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        code, out, _ = run(
            capsys,
            "--config",
            str(config),
            "--database-url",
            database_url,
            "--json",
            "--evaluator",
            "correctness",
        )
        assert code == 0
        tally = json.loads(out)["evaluators"]["correctness"]
        # one record parsed on its retry; the other two gave garbage twice
        assert tally["evaluated"] == 1 and tally["errors"] == 2
        assert len(judge.requests) == 6
        retry = judge.requests[1]["body"]["messages"]
        assert retry[-2]["role"] == "assistant" and "cannot be used" in retry[-1]["content"]
    rows = evaluations(database_url)
    errors = [r for r in rows if r.status == "error"]
    assert len(errors) == 2 and all("unparsable" in (r.error or "") for r in errors)
    assert all(r.passed is None and r.score is None for r in errors)


def test_a_judge_that_is_down_fails_nothing_and_loses_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    seed(database_url, support_records(8, outdated_every=2))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = write_config(tmp_path / "gw.yaml", dead, JUDGE + BUILTINS)
    args = ["--config", str(config), "--database-url", database_url, "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0
    assert "unreachable" in err
    tally = json.loads(out)["evaluators"]["correctness"]
    assert tally["evaluated"] == 0 and tally["pending"] == 8
    assert json.loads(out)["evaluators"]["refusal"]["evaluated"] == 8  # checks still ran
    assert not [r for r in evaluations(database_url) if r.evaluator == "correctness"]

    with fake_llm(default=grade) as judge:  # back up: everything left is judged
        write_config(tmp_path / "gw.yaml", judge.url, JUDGE + BUILTINS)
        code, out, _ = run(capsys, *args)
        assert code == 0
        assert json.loads(out)["evaluators"]["correctness"]["evaluated"] == 8
        assert len(judge.requests) == 8


def test_a_judge_that_times_out_leaves_the_records_pending(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    seed(database_url, support_records(4))
    with fake_llm(default=slow_grade(2.0)) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE, timeout_seconds=0.3)
        code, out, err = run(
            capsys, "--config", str(config), "--database-url", database_url, "--json"
        )
    assert code == 0 and "unreachable" in err
    assert json.loads(out)["evaluators"]["correctness"]["pending"] == 4
    assert evaluations(database_url) == []


def test_the_token_budget_stops_judging_and_says_so(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLMSCOPE_EVAL_MAX_TOKENS_PER_DAY", "2000")
    monkeypatch.setenv("LLMSCOPE_EVAL_CONCURRENCY", "1")
    seed(database_url, support_records(10))
    with fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", judge.url, JUDGE)
        code, out, err = run(
            capsys, "--config", str(config), "--database-url", database_url, "--json"
        )
        assert code == 0
        assert "budget" in err and "LLMSCOPE_EVAL_MAX_TOKENS_PER_DAY=2000" in err
        tally = json.loads(out)["evaluators"]["correctness"]
        # each call costs 380 tokens (the fake's usage) and is estimated at ~720 before it
        assert 1 <= tally["evaluated"] <= 5 and tally["pending"] == 10 - tally["evaluated"]
        assert tally["tokens"] <= 2000
        calls = len(judge.requests)
        assert calls == tally["evaluated"]
        # the same day, a second run finds the budget spent and calls nothing
        code, out, err = run(capsys, "--config", str(config), "--database-url", database_url)
        assert code == 0 and "budget" in err and len(judge.requests) == calls


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--config", "/nonexistent.yaml"], "--config"),
        (["--since", "yesterday"], "--since"),
        (["--evaluator", "nope"], "--evaluator"),
        (["--since", "2026-11-21T00:00:00Z", "--until", "2026-11-20T00:00:00Z"], "--since"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    config = write_config(tmp_path / "gw.yaml", "http://127.0.0.1:9/v1", JUDGE)
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["evaluate", "--config", str(config), "--database-url", url, *args]
    if args[1] == "yesterday":  # argparse refuses it itself
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    else:
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
