"""``llmscope experiment`` end to end: the fake provider behind the gateway, a fake judge, a real
store on every backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from llmscope.app.cli import main
from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker
from llmscope.db.models import Experiment, ExperimentItem, Record
from llmscope.experiment_report import TEMPLATE_TEXT_MAX_BYTES
from tests.evaluate.experiments.support import RUN_ID, cluster_records, seed_run
from tests.evaluate.experiments.world import N, rows, world


def test_the_fixed_template_is_judged_better_and_production_shows_no_difference(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(seeded, tmp_path) as w:
        report = w.experiment(
            capsys, "--variant", "template=support@2", "--variant", "template=support@1"
        )
        assert report["status"] == "done" and report["records"] == N
        assert report["run_id"] == RUN_ID and report["evaluators"] == ["correctness", "refusal"]
        base = report["baseline"]
        assert base["pass_rate"] == 0.0 and base["mean_score"] == 1.0 and base["judged"] == N
        assert base["tokens"] == N * 41
        fixed, same = report["variants"]
        assert fixed["verdict"] == "better" and fixed["pass_rate"] == 1.0
        assert fixed["p_value"] == pytest.approx(2 / 2**N) and fixed["p_value"] < 0.01
        assert fixed["ci"][0] > 0.5 and fixed["mean_score_difference"] == 4.0
        assert fixed["score_p_value"] < 0.01 and fixed["errors"] == 0
        assert same["verdict"] == "no detectable difference" and same["p_value"] == 1.0
        assert same["pass_rate"] == 0.0 and same["needed_sample"] is None
        assert fixed["latency_p50"] is not None and fixed["tokens"] > 0

        # each record x variant replayed once through the fake provider; the judge graded the
        # original answers and both variants' answers
        assert len(w.provider.requests) == 2 * N
        assert len(w.judge.requests) == 3 * N
        sent = [r["body"]["messages"][0]["content"] for r in w.provider.requests]
        assert sum("in force today" in s for s in sent) == N

        # the replays are recorded as internal calls, tagged with the experiment and variant
        calls = rows(seeded, Record, Record.internal.is_(True))
        replays = [c for c in calls if c.tags and "llmscope.experiment" in c.tags]
        assert len(replays) == 2 * N
        assert {c.tags["llmscope.experiment"] for c in replays} == {report["id"]}
        assert {c.tags["llmscope.experiment.variant"] for c in replays} == {"1", "2"}
        assert {(c.template_name, c.template_version) for c in replays} == {
            ("support", "1"),
            ("support", "2"),
        }
        assert len([c for c in calls if c.tags and "llmscope.evaluator" in c.tags]) == 3 * N

        # show and the API serve the stored report
        code, out, _ = w.run(capsys, "show", report["id"], "--json")
        assert code == 0 and json.loads(out) == report
        code, out, _ = w.run(capsys, "show", report["id"])
        assert "better: McNemar p=" in out and "no detectable difference" in out
        app = create_app(Settings(database_url=seeded, data_dir=tmp_path / "api"))
        with TestClient(app) as client:
            got = client.get(f"/api/v1/experiments/{report['id']}")
            assert got.status_code == 200 and got.json() == report
            assert client.get("/api/v1/experiments/exp-nope").status_code == 404

        # a rerun of the same spec on the same records reuses every answer and verdict
        again = w.experiment(capsys, "--variant", "template=support@2")
        assert again["id"] != report["id"]
        assert again["variants"][0]["reused"] == N
        assert again["variants"][0]["verdict"] == "better"
        assert len(w.provider.requests) == 2 * N and len(w.judge.requests) == 3 * N
    items = rows(seeded, ExperimentItem, ExperimentItem.experiment_id == report["id"])
    assert len(items) == 3 * N
    assert {i.record_id for i in items} == {f"c0-{i:04d}" for i in range(N)}


def test_the_sample_takes_thumbs_down_first_and_is_seeded(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(seeded, tmp_path) as w:
        first = w.experiment(capsys, "--variant", "param.temperature=0.2", "--sample", "5")
        second = w.experiment(capsys, "--variant", "param.temperature=0.2", "--sample", "5")
        assert len(w.provider.requests) == 5  # the second run reused the five answers
        assert all(r["body"]["temperature"] == 0.2 for r in w.provider.requests)
    chosen = [
        rows(seeded, Experiment, Experiment.id == e["id"])[0].record_ids for e in (first, second)
    ]
    assert chosen[0] == chosen[1] and len(chosen[0]) == 5
    assert set(chosen[0][:2]) == {"c0-0003", "c0-0007"}
    # without a template in the spec, the original messages are replayed: same answers
    assert first["variants"][0]["verdict"] == "no detectable difference"


BAD = [
    (["--variant", "template=support@9"], "no template 'support@9'"),
    (["--variant", "template=nope@1"], "no template 'nope@1'"),
    (["--variant", "endpoint=missing"], "no endpoint or route 'missing'"),
    (["--variant", "endpoint=embed"], "is llm/v1/embeddings"),
    (["--variant", "template=support@3"], "needs the variable 'customer'"),
    (["--variant", "temperature=1"], "unknown key 'temperature'"),
    (["--variant", "param.model=x"], "'param.model' cannot be set"),
    (["--variant", "template-file=/nonexistent/t.txt"], "cannot read template-file"),
    (["--variant", "template=support@2", "--evaluator", "nope"], "no evaluator 'nope'"),
    (["--variant", "template=support@2", "--run", "run-nope"], "no analysis run 'run-nope'"),
    (["--variant", "template=support@2", "--sample", "0"], "--sample"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_with_one_line_and_calls_nothing(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    extra = '  - {name: support, version: 3, text: "Dear {{customer}}: {{question}}"}'
    with world(seeded, tmp_path, extra) as w:
        code, out, err = w.run(capsys, "run", "--cluster", "0", "--config", str(w.config), *args)
        assert code == 2 and out == ""
        assert message in err and len(err.strip().splitlines()) == 1
        code, _, err = w.run(
            capsys,
            "run",
            "--cluster",
            "7",
            "--config",
            str(w.config),
            "--variant",
            "template=support@2",
        )
        assert code == 2 and "no cluster 7 in run run-exp-1" in err
        assert w.provider.requests == [] and w.judge.requests == []
    assert rows(seeded, Experiment) == []
    assert rows(seeded, Record, Record.internal.is_(True)) == []


def test_export_a_cluster_and_an_experiment_as_mlflow_datasets(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.genai.evaluation.utils import _convert_eval_set_to_df

    with world(seeded, tmp_path) as w:
        report = w.experiment(capsys, "--variant", "template=support@2", "--sample", "4")
        code, out, _ = w.run(capsys, "export", "--cluster", "1")
        assert code == 0
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 5 and all(
            set(r) >= {"inputs", "outputs", "expectations"} for r in lines
        )
        assert lines[0]["inputs"]["variables"]["question"].startswith("can I return item c1-")
        assert lines[0]["outputs"].startswith("Echo: ")
        path = tmp_path / "exp.jsonl"
        code, _, _ = w.run(capsys, "export", "--experiment", report["id"], "--output", str(path))
        assert code == 0
        exported = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["variant"] for r in exported] == ["baseline"] * 4 + ["1"] * 4
        assert all(r["expectations"]["evaluations"]["correctness"]["passed"] for r in exported[4:])
        assert not any(
            r["expectations"]["evaluations"]["correctness"]["passed"] for r in exported[:4]
        )
        assert "in force today" in exported[4]["inputs"]["messages"][0]["content"]
        frame = _convert_eval_set_to_df(exported)  # what mlflow.genai.evaluate reads
        assert len(frame) == 8 and {"inputs", "outputs", "expectations"} <= set(frame.columns)
        code, out, _ = w.run(capsys, "export", "--cluster", "1", "--format", "csv")
        assert code == 0 and out.splitlines()[0].startswith("inputs,outputs,expectations")
        assert len(out.strip().splitlines()) == 6
        code, _, err = w.run(capsys, "export", "--cluster", "9")
        assert code == 2 and "no cluster 9" in err
    engine = make_engine(seeded)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(ExperimentItem)) == 8
    engine.dispose()


def test_a_candidate_file_with_failed_replays_and_a_rerun_that_retries_only_those(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = tmp_path / "fix.txt"
    candidate.write_text("Answer {{question}} with the refund policy in force today.")
    spec = f"template-file={candidate},param.max_tokens=50"
    with world(seeded, tmp_path) as w:
        w.provider.fail_next(400, {"error": {"message": "bad request"}}, times=2)
        report = w.experiment(capsys, "--variant", spec)
        variant = report["variants"][0]
        assert variant["errors"] == 2 and variant["answers"] == N - 2
        assert variant["pairs"] == N - 2 and variant["verdict"] == "better"
        assert variant["resolved"]["template_file"] == str(candidate)
        assert all(r["body"]["max_tokens"] == 50 for r in w.provider.requests)
        again = w.experiment(capsys, "--variant", spec)
        assert len(w.provider.requests) == N + 2  # only the two failed replays are made again
        assert again["variants"][0]["reused"] == N - 2 and again["variants"][0]["errors"] == 0
    replays = [
        c
        for c in rows(seeded, Record, Record.internal.is_(True))
        if c.tags and "llmscope.experiment" in c.tags
    ]
    versions = {c.template_version for c in replays}
    assert len(versions) == 1 and versions.pop().startswith("file-")
    assert sum(c.status == "error" for c in replays) == 2


def test_the_token_budget_stops_the_experiment_and_says_so(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSCOPE_EXPERIMENT_MAX_TOKENS", "12000")
    monkeypatch.setenv("LLMSCOPE_EXPERIMENT_CONCURRENCY", "1")
    with world(seeded, tmp_path) as w:
        code, out, err = w.run(
            capsys, "run", "--cluster", "0", "--config", str(w.config), "--json",
            "--variant", "template=support@2",
        )  # fmt: skip
        assert code == 0
        report = json.loads(out)
        assert report["status"] == "stopped" and "token budget reached" in err
        answered = report["variants"][0]["answers"]
        assert 0 < len(w.provider.requests) == answered < N
    stored = rows(seeded, Experiment, Experiment.id == report["id"])[0]
    assert stored.status == "stopped" and stored.report["stopped"] == report["stopped"]


def test_verdicts_llmscope_evaluate_stored_are_reused_for_the_original_answers(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(seeded, tmp_path) as w:
        code = main(["evaluate", "--config", str(w.config), "--database-url", seeded])
        capsys.readouterr()
        assert code == 0 and len(w.judge.requests) == N + 5
        report = w.experiment(capsys, "--variant", "template=support@2")
        assert len(w.judge.requests) == N + 5 + N  # only the variant's answers were judged
        assert report["baseline"]["pass_rate"] == 0.0 and report["baseline"]["mean_score"] == 1.0
        assert report["variants"][0]["verdict"] == "better"


SYSTEM_OLD = "You are the shop's assistant. Refund policy: 14 days, store credit."
SYSTEM_NEW = "You are the shop's assistant. Refund policy: 30 days, to the card."


def test_a_system_prompt_template_keeps_the_users_question(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The demo's shape: the template is the system prompt (no variables), the user's message
    follows it; a template variant swaps the system prompt and keeps the conversation."""
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    records = []
    for i, record in enumerate(cluster_records(6)):
        question = f"where is my refund for order {i}?"
        record["messages"] = [
            {"role": "system", "content": SYSTEM_OLD},
            {"role": "user", "content": question},
        ]
        record["response"] = f"Echo: {question}"
        record["template"] = {
            "name": "policy",
            "version": "1",
            "text": SYSTEM_OLD,
            "variables": {"question": question},
        }
        records.append(record)
    # a record of a client that sent no system prompt: a fixed candidate goes first
    records[5]["messages"] = records[5]["messages"][1:]
    seed_run(database_url, {0: records})
    prompts = (
        f'  - {{name: policy, version: 1, text: "{SYSTEM_OLD}"}}\n'
        f'  - {{name: policy, version: 2, text: "{SYSTEM_NEW}"}}'
    )
    candidate = tmp_path / "fix.txt"
    candidate.write_text("Answer this: {{question}}")
    with world(database_url, tmp_path, prompts) as w:
        w.experiment(capsys, "--variant", "template=policy@2")
        sent = [r["body"]["messages"] for r in w.provider.requests]
        assert len(sent) == 6
        questions = {f"where is my refund for order {i}?" for i in range(6)}
        assert {m[-1]["content"] for m in sent} == questions  # the user's question is kept
        assert all(m[-1]["role"] == "user" for m in sent)
        assert all(m[0] == {"role": "system", "content": SYSTEM_NEW} for m in sent)
        assert sorted(len(m) for m in sent) == [2] * 6
        # a candidate with variables replaces the record's template message too; on a record
        # holding no message its template rendered, it is the whole input (as before)
        w.experiment(capsys, "--variant", f"template-file={candidate}")
        sent = sorted(
            (r["body"]["messages"] for r in w.provider.requests[6:]), key=lambda m: m[-1]["content"]
        )
        expected = [
            [{"role": "system", "content": f"Answer this: {q}"}, {"role": "user", "content": q}]
            for q in sorted(questions)
        ]
        alone = "where is my refund for order 5?"
        expected[5] = [{"role": "user", "content": f"Answer this: {alone}"}]
        assert sent == sorted(expected, key=lambda m: m[-1]["content"])


def test_a_sub_cluster_replays_the_members_its_run_stored(seeded: str) -> None:
    """A flagged sub-cluster (an entry with a parent, so "Try a fix" offers it) is a dataset
    of the members the run stored for it, analysable ones only, the thumbs-down first."""
    from llmscope.db.models import RunCluster
    from llmscope.evaluate.experiments import dataset

    members = ["c0-0007", "c0-0001", "c0-0003", "gone", "c0-0002"]
    engine = make_engine(seeded)
    with make_sessionmaker(engine)() as session:
        session.add(
            RunCluster(
                run_id=RUN_ID,
                cluster_id=7,
                size=len(members),
                keywords=[],
                stats={"parent": 0, "members": members},
            )
        )
        session.commit()
        assert dataset.cluster_records(session, RUN_ID, 7) == [
            "c0-0001",
            "c0-0002",
            "c0-0003",
            "c0-0007",
        ]
        run_id, items = dataset.build(session, RUN_ID, 7, size=3)
        chosen = [item["id"] for item in items]
        assert run_id == RUN_ID and len(chosen) == 3
        assert set(chosen[:2]) == {"c0-0003", "c0-0007"}  # the thumbs-down first
    engine.dispose()


def _candidate(tmp_path: Path, kind: str) -> str:
    """A template-file of ``kind`` the CLI must refuse before anything is called."""
    path = tmp_path / f"candidate-{kind}"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":  # would block a plain read until a writer came
        os.mkfifo(path)
    elif kind == "device":
        return "/dev/zero"  # would never end
    elif kind == "too large":
        path.write_bytes(b"a" * (TEMPLATE_TEXT_MAX_BYTES + 1))
    elif kind == "not UTF-8":
        path.write_bytes("Répondez à {{question}}".encode("latin-1"))
    elif kind == "empty":
        path.write_text(" \n")
    return str(path)


FILE_PROBLEMS = [
    ("missing", "No such file or directory"),
    ("directory", "is not a regular file"),
    ("fifo", "is not a regular file"),
    ("device", "is not a regular file"),
    ("too large", "is larger than 256 KiB (262144 bytes)"),
    ("not UTF-8", "is not UTF-8 text (byte 1)"),
    ("empty", "is empty"),
]


@pytest.mark.parametrize(("kind", "message"), FILE_PROBLEMS)
def test_a_template_file_the_cli_cannot_use_exits_2_with_one_line_before_any_call(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    path = _candidate(tmp_path, kind)
    with world(seeded, tmp_path) as w:
        code, out, err = w.run(
            capsys, "run", "--cluster", "0", "--config", str(w.config),
            "--variant", f"template-file={path}",
        )  # fmt: skip
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert f"template-file {path!r} {message}" in err or (
            kind == "missing" and f"cannot read template-file {path!r}: {message}" in err
        ), err
        assert w.provider.requests == [] and w.judge.requests == []
    assert rows(seeded, Experiment) == []


def test_a_template_file_of_exactly_256_kib_is_read_and_replayed(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = "Answer {{question}} with the refund policy in force today. "
    candidate = tmp_path / "fix.txt"
    candidate.write_text(head + "x" * (TEMPLATE_TEXT_MAX_BYTES - len(head)))
    with world(seeded, tmp_path) as w:
        report = w.experiment(capsys, "--variant", f"template-file={candidate}", "--sample", "2")
        assert report["variants"][0]["answers"] == 2
        sent = w.provider.requests[0]["body"]["messages"][-1]["content"]
        assert sent.startswith("Answer can I return item c0-") and sent.endswith("x" * 100)
