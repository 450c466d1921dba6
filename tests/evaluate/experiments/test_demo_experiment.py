"""The demo's gateway can try a fix: its evaluator fails the answers that quote the outdated
refund policy (``refund-policy@3``), and replaying the cluster with ``refund-policy@2`` is
judged better. The store is seeded with calls shaped as the demo sends them (system prompt, then
the customer's question) and answered as its offline provider answers them; the whole demo is
not run (tests/test_demo.py does that)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmscope.app.cli import main
from llmscope.app.demo.plan import TEMPLATES
from llmscope.app.demo.replay import gateway_config
from llmscope.collector.gateway.providers.offline import answer_for
from llmscope.db.models import ExperimentItem
from tests.evaluate.experiments.support import cluster_records, seed_run
from tests.evaluate.experiments.world import rows

N = 12  # calls under each refund-policy version


def _demo_call(record: dict, version: str, question: str) -> dict:
    system = TEMPLATES[("refund-policy", version)]
    return {
        **record,
        "endpoint": "support-chat",
        "provider": "offline",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        "response": answer_for(question, system),
        "template": {
            "name": "refund-policy",
            "version": version,
            "text": system,
            "variables": {"question": question},
        },
    }


def test_the_demo_refund_cluster_is_fixed_by_the_current_policy(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    questions = [f"When will I get my refund for order {4100 + i}?" for i in range(2 * N)]
    records = [
        _demo_call(record, "3" if i < N else "2", questions[i])
        for i, record in enumerate(cluster_records(2 * N))
    ]
    seed_run(database_url, {0: records})
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway_config()), encoding="utf-8")

    code = main(
        ["experiment", "run", "--cluster", "0", "--variant", "template=refund-policy@2"]
        + ["--config", str(config), "--database-url", database_url, "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["evaluators"] == ["current-refund-policy"]
    assert report["baseline"]["pass_rate"] == 0.5  # the outdated policy fails the @3 answers
    (fixed,) = report["variants"]
    assert fixed["pass_rate"] == 1.0 and fixed["verdict"] == "better"
    assert fixed["p_value"] == pytest.approx(2 / 2**N) and fixed["p_value"] < 0.01
    # the replays kept each customer's question and swapped the system prompt only
    current = TEMPLATES[("refund-policy", "2")]
    answers = {
        i.record_id: i.answer
        for i in rows(database_url, ExperimentItem, ExperimentItem.variant == "1")
    }
    assert answers == {
        r["id"]: answer_for(q, current) for r, q in zip(records, questions, strict=True)
    }
