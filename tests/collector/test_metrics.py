"""GET /metrics equals the store after mixed traffic, with one and with two worker processes.

A real ``llmscope serve`` (gateway with an offline endpoint priced in ``pricing:``) takes gateway
calls, REST batches, OTLP spans and feedback; the scrape, summed over the workers by
prometheus-client's multiprocess mode, must then agree with what the store holds.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from llmscope.analysis.findings import build_findings
from llmscope.collector.api.routes.metrics import (
    StoreCollector,
    cluster_gauges,
    evaluator_gauges,
)
from llmscope.db import make_engine, make_sessionmaker
from llmscope.db.models import AnalysisRun, Feedback, Record, RunCluster
from llmscope.db.queries import load_run_report
from llmscope.metrics import OTHER, Metrics
from llmscope.report import (
    Agreement,
    ClusterEntry,
    Drift,
    EvaluationHotspot,
    EvaluatorEntry,
    FeedbackCounts,
    GlobalDrift,
    Hotspot,
    Implicit,
    LatencySlice,
    Regression,
    RephraseRate,
    RunReport,
    TokenSlice,
    WindowInfo,
)
from tests.collector.otlp.spans import export_request, make_span
from tests.conftest import cli_server
from tests.factories import record

CONFIG = """
endpoints:
  - name: support
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: support-bot, config: {latency_ms: 1}}
pricing:
  - {model: support-bot, input_usd_per_million: 2.0, output_usd_per_million: 8.0}
"""


def scrape(base: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Every sample of the scrape as ``name{label=value,...}`` -> value (labels sorted)."""
    answer = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    wanted = [f"{k}={v}" for k, v in labels.items()]
    return sum(
        value
        for key, value in samples.items()
        if key.split("{", 1)[0] == name and all(w in key for w in wanted)
    )


def mixed_load(base: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        for i in range(12):  # gateway calls, some with a template
            extra = {"llmscope": {"template": "faq", "version": "2"}} if i % 3 == 0 else {}
            answer = http.post(
                "/v1/chat/completions",
                json={
                    "model": "support",
                    "messages": [{"role": "user", "content": f"Where is my order {i}?"}],
                    **extra,
                },
            )
            assert answer.status_code == 200
        answer = http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
        assert answer.status_code == 404  # recorded too, with status error

        def batch(k: int, ids: range) -> list[dict[str, object]]:  # a priced and an unpriced model
            return [
                record(id=f"r{k}-{i}", model="gpt-4o-mini" if i % 2 else "house-model") for i in ids
            ]

        for k in range(3):  # REST batches
            answer = http.post("/api/v1/records", json={"records": batch(k, range(10))})
            assert answer.status_code == 201
        # Retries: a whole batch again (stores and counts nothing), and a batch half of whose
        # records are already stored (5 new records, two of them priced).
        retried = http.post("/api/v1/records", json={"records": batch(0, range(10))})
        assert retried.status_code == 201
        half = batch(2, range(5)) + batch(3, range(5))
        assert http.post("/api/v1/records", json={"records": half}).status_code == 201
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 40,
            "gen_ai.usage.output_tokens": 11,
        }
        spans = [make_span(attributes, span_id=bytes([0] * 7 + [i + 1])) for i in range(7)]
        for _ in range(2):  # the exporter retries the same export: its spans count once
            answer = http.post(
                "/v1/traces",
                content=export_request(spans).SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            )
            assert answer.status_code == 200, answer.text
        for i, value in enumerate(["down", "up", "down", 0.5, "down"]):  # feedback
            answer = http.post(f"/api/v1/records/r0-{i}/feedback", json={"value": value})
            assert answer.status_code == 201


@pytest.mark.e2e
@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_equal_the_store_after_mixed_load(
    workers: int, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    args = ["serve", "--config", str(config), "--database-url", database_url]
    env = {"LLMSCOPE_DATA_DIR": str(tmp_path / "data")}
    with cli_server([*args, "--workers", str(workers)], env=env) as base:
        mixed_load(base)
        engine = make_engine(database_url)
        with make_sessionmaker(engine)() as session:
            deadline = time.monotonic() + 20
            while session.scalar(select(func.count()).select_from(Record)) < 55:
                assert time.monotonic() < deadline, "the gateway's records never arrived"
                time.sleep(0.2)
                session.rollback()
            by_source = Counter(
                {
                    s: n
                    for s, n in session.execute(
                        select(Record.source, func.count()).group_by(Record.source)
                    )
                }
            )
            tokens_in, tokens_out, cost, priced = session.execute(
                select(
                    func.sum(Record.input_tokens),
                    func.sum(Record.output_tokens),
                    func.sum(Record.cost_usd),
                    func.count(Record.cost_usd),
                )
            ).one()
            errors = session.scalar(select(func.count()).where(Record.status == "error"))
            downs = session.scalar(select(func.count()).where(Feedback.thumb == "down"))
            feedback = session.scalar(select(func.count()).select_from(Feedback))
        engine.dispose()
        # A scrape may land on either worker: each must answer the sum over both.
        for _ in range(3 * workers):
            samples = scrape(base)
            assert by_source == {"gateway": 13, "api": 35, "otlp": 7}
            for source, count in by_source.items():
                assert total(samples, "llmscope_calls_total", source=source) == count
            assert total(samples, "llmscope_calls_total", status="error") == errors == 1
            assert total(samples, "llmscope_tokens_total", direction="input") == tokens_in
            assert total(samples, "llmscope_tokens_total", direction="output") == tokens_out
            assert total(samples, "llmscope_cost_usd_total") == pytest.approx(cost, rel=1e-9)
            assert priced == 12 + 17 + 7  # priced gateway calls, gpt-4o-mini records and spans
            assert total(samples, "llmscope_feedback_total") == feedback == 5
            assert total(samples, "llmscope_feedback_total", thumb="down") == downs == 3
            assert total(samples, "llmscope_call_latency_seconds_count") == 55
            assert total(samples, "llmscope_calls_total", template="faq@2") == 4
            assert "llmscope_recorder_spool_bytes{}" in samples


def test_metrics_need_the_read_scope_once_keys_exist(live_server: str, database_url: str) -> None:
    from llmscope.keys import create_key

    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        read_key = create_key(session, name="prometheus", scope="read")
        ingest_key = create_key(session, name="app", scope="ingest")
        session.commit()
    engine.dispose()
    time.sleep(2.1)  # the collector's key cache
    assert httpx.get(f"{live_server}/metrics", timeout=10).status_code == 401
    wrong = {"authorization": f"Bearer {ingest_key}"}
    assert httpx.get(f"{live_server}/metrics", headers=wrong, timeout=10).status_code == 403
    samples = scrape(live_server, {"authorization": f"Bearer {read_key}"})
    assert "llmscope_inflight_requests{}" in samples


def test_label_values_are_capped_and_the_rest_is_other() -> None:
    metrics = Metrics(max_label_values=2)
    for model in ["a", "b", "c", "d", "a"]:
        metrics.call({"source": "api", "endpoint": "e", "model": model, "latency_ms": 10})
    text = metrics.render().decode()
    counts = {
        s.labels["model"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "llmscope_calls"
        for s in f.samples
        if s.name == "llmscope_calls_total"
    }
    assert counts == {"a": 2, "b": 1, OTHER: 2}


def test_metrics_off_serves_nothing_and_costs_nothing() -> None:
    metrics = Metrics(enabled=False)
    metrics.call({"source": "api", "model": "a"})
    metrics.feedback("e", "down")
    assert b"llmscope_calls" not in metrics.render()


def test_cluster_gauges_come_from_the_latest_run(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)

    def cluster(cid: int, size: int, down: float | None, flagged: bool) -> ClusterEntry:
        return ClusterEntry(
            id=cid,
            size=size,
            baseline_count=size // 2,
            current_count=size - size // 2,
            baseline_share=size / 200,
            current_share=size / 100,
            drift=Drift(kind="grew", score=1.0, p_value=0.01, q_value=0.01, flagged=flagged),
            feedback=FeedbackCounts(rated=10, down=0, down_rate=down),
            hotspot=Hotspot(lift=1.0, p_value=0.5, q_value=0.5, flagged=False),
            latency_ms=LatencySlice(p50=None, p95=None),
            tokens=TokenSlice(input_p50=None, output_p50=None),
            evaluations={
                "correctness": EvaluationHotspot(
                    evaluated=8, failed=6, fail_rate=0.75, lift=3.0, flagged=cid == 2
                )
            },
            implicit=Implicit(
                rephrase=RephraseRate(
                    current_rate=0.4,
                    baseline_rate=0.1,
                    current=8,
                    baseline=2,
                    p_value=1e-4,
                    q_value=1e-3,
                    flagged=cid == 0,
                    kind="emerging",
                    lift=3.0,
                )  # fmt: skip
            ),
            regressions={
                "latency_ms": Regression(
                    baseline=200,
                    current=900,
                    ratio=4.5,
                    p_value=1e-6,
                    q_value=1e-5,
                    flagged=cid == 1,
                    baseline_calls=10,
                    current_calls=10,
                )  # fmt: skip
            },
        )

    def evaluator(evaluated: int, failed: int) -> EvaluatorEntry:
        return EvaluatorEntry(
            version="v1",
            evaluated=evaluated,
            failed=failed,
            fail_rate=failed / evaluated,
            agreement=Agreement(n=0),
        )

    def with_findings(**fields: Any) -> RunReport:
        report = RunReport(**fields)
        report.findings = build_findings(report)
        return report

    from datetime import UTC, datetime

    moment = datetime(2026, 1, 2, tzinfo=UTC)
    with factory() as session:
        for run_id, clusters in [  # their findings: what the analysis builds from the flags
            ("old", [cluster(0, 5, 0.9, True)]),
            (
                "new",
                [
                    cluster(0, 30, 0.25, True),
                    cluster(1, 20, None, False),
                    cluster(2, 10, 0.1, False),
                ],
            ),
        ]:
            session.add(
                AnalysisRun(
                    id=run_id,
                    created_at=moment if run_id == "new" else moment.replace(day=1),
                    baseline_start=moment,
                    baseline_end=moment,
                    current_start=moment,
                    current_end=moment,
                    report=with_findings(
                        run_id=run_id,
                        created_at=moment,
                        baseline=WindowInfo(start=moment, end=moment, records=200),
                        current=WindowInfo(start=moment, end=moment, records=100),
                        global_drift=GlobalDrift(
                            statistic=None, p_value=None, flagged=False, method="mmd"
                        ),
                        clusters=clusters,
                        evaluators={"correctness": evaluator(80, 20), "short": evaluator(40, 1)},
                    ).to_json(),
                )
            )
            session.flush()
            for c in clusters:
                session.add(
                    RunCluster(run_id=run_id, cluster_id=c.id, stable_key=f"k{c.id}", size=1)
                )
        session.commit()
        latest = load_run_report(session)
        assert latest is not None
        found = cluster_gauges(session, latest, cap=2)
        evaluators = evaluator_gauges(latest, cap=1)
    flagged = {
        (sample.labels["cluster"], sample.labels["signal"]): sample.value
        for family in StoreCollector(factory, tmp_path, cap=2).collect()
        if family.name == "llmscope_cluster_flagged"
        for sample in family.samples
    }
    engine.dispose()
    # exported as llmscope_cluster_flagged{signal="rephrase"}, beside the other signals
    assert flagged[("k0", "rephrase")] == 1.0 and flagged[(OTHER, "rephrase")] == 0.0
    assert flagged[("k0", "drift")] == 1.0 and flagged[(OTHER, "regression")] == 1.0
    assert {signal for _, signal in flagged} == {
        "drift",
        "hotspot",
        "evaluation",
        "regression",
        "rephrase",
    }
    assert [c["key"] for c in found] == ["k0", OTHER]
    assert found[0]["current"] == pytest.approx(0.3) and found[0]["down_rate"] == 0.25
    assert found[0]["drift"] is True
    assert found[1]["current"] == pytest.approx(0.3)  # clusters 1 and 2 summed
    # cluster 2's judge failures were flagged: folded into "other", the flag stays
    assert (found[0]["evaluation"], found[1]["evaluation"]) == (False, True)
    # cluster 1's latency regression is a finding: its signal too
    assert (found[0]["regression"], found[1]["regression"]) == (False, True)
    # cluster 0's answers were rephrased more than the rest's: its rephrase signal
    assert (found[0]["rephrase"], found[1]["rephrase"]) == (True, False)
    assert evaluators == [("correctness", 80, 0.25)]  # the most evaluated, within the cap


def test_a_batch_counts_exactly_as_its_calls_one_by_one() -> None:
    values = [0.0, 50.0, 51.0, 100.0, 300.0, 1000.0, 2400.0, 2500.0, 99_000.0, 500_000.0]
    rows = [
        {"source": "api", "endpoint": "e", "model": "m", "latency_ms": v, "ttft_ms": v / 2}
        | {"input_tokens": 3, "output_tokens": i, "cost_usd": 0.001 * i, "template_name": "t"}
        for i, v in enumerate(values)
    ]
    batched, single = Metrics(), Metrics()
    batched.calls_committed(rows)
    for row in rows:
        single.latency.labels("e", "m").observe(row["latency_ms"] / 1000)
        single.ttft.labels("e", "m").observe(row["ttft_ms"] / 1000)
        single.calls.labels("api", "e", "m", "t@", "ok").inc()
        single.tokens.labels("e", "m", "input").inc(3)
        if row["output_tokens"]:
            single.tokens.labels("e", "m", "output").inc(row["output_tokens"])
        if row["cost_usd"]:
            single.cost.labels("e", "m").inc(row["cost_usd"])

    def samples(metrics: Metrics) -> dict[str, float]:
        return {
            f"{s.name}{sorted(s.labels.items())}": s.value
            for f in text_string_to_metric_families(metrics.render().decode())
            for s in f.samples
            if not s.name.endswith("_created")
        }

    expected = samples(single)
    assert samples(batched) == pytest.approx(expected)
    assert expected["llmscope_call_latency_seconds_count[('endpoint', 'e'), ('model', 'm')]"] == 10
