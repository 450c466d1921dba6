"""Evaluations: built-in checks in records/s, judged records/s, and ingest with online judging.

1. **Built-in checks**: each check over N stored answers, computed only (``Judging.check_rows``)
   and end to end (``evaluate_range``: read, check, store); baseline: a loop that only reads each
   answer's length (the floor of any per-record work in Python).
2. **Judged records/s** at 16 and 64 judge calls in flight, through an in-process gateway (as
   ``llmscope evaluate`` does: claim, call, record the internal call, store the verdict) against
   a fake OpenAI-format judge that answers in 300 ms; baseline: what the judge alone allows,
   in-flight / 0.3 s. Target: >= 40 records/s at 64 (bounded by the judge, not by llmscope).
3. **Ingest while judging online**: records/s posted to a real ``llmscope serve`` whose gateway
   has a judge (sample rate 1) against the same fake judge, against the same collector without
   evaluators, in one run (fresh store each), and how many verdicts the online judge wrote.

    python benchmarks/evaluations.py [--records 20000] [--judged 1200] [--ingest 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import collector, count_records, free_port, fresh_database, post_all
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmscope.collector.gateway.evaluators import parse_evaluators  # noqa: E402
from llmscope.collector.gateway.service import Gateway  # noqa: E402
from llmscope.collector.ingest import Recorder, RecordWriter  # noqa: E402
from llmscope.collector.ingest.store import insert_records  # noqa: E402
from llmscope.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from llmscope.db.models import Evaluation  # noqa: E402
from llmscope.evaluate.evaluations.runner import Judging, evaluate_range  # noqa: E402
from llmscope.evaluate.evaluations.store import Candidate  # noqa: E402
from llmscope.schema import RecordIn, record_row  # noqa: E402
from tests.collector.gateway.fake_provider import ServerThread  # noqa: E402

JUDGE_DELAY = 0.3
CHECKS = [
    {"name": "refusal", "type": "refusal"},
    {"name": "valid_json", "type": "json", "schema": {"type": "object"}},
    {"name": "cites", "type": "regex", "pattern": r"policy \d+", "must_match": True},
    {"name": "brief", "type": "length", "min_words": 3, "max_words": 60},
    {"name": "no_pii", "type": "pii"},
    {"name": "slow", "type": "latency", "max_ms": 1000},
]
ANSWERS = [
    "You can get a refund within 30 days of delivery under policy 12.",
    "I'm sorry, but I can't help with that request.",
    '{"answer": "Open Settings, then Security.", "confidence": 0.9}',
    "Write to support@example.com or call +1 415-555-0132 and quote your order number 88412.",
]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def fake_judge() -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(JUDGE_DELAY)
        bad = "outdated" in body["messages"][-1]["content"]
        verdict = {"score": 1 if bad else 5, "justification": "graded by the fake judge"}
        return JSONResponse(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "judge-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": json.dumps(verdict)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 300, "completion_tokens": 30, "total_tokens": 330},
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def records(n: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "endpoint": "support-chat",
            "model": "gpt-4o-mini",
            "prompt": f"Can I get a refund for order {i}?",
            "response": ANSWERS[i % len(ANSWERS)] + ("" if i % 5 else " (outdated policy)"),
            "latency_ms": 200.0 + (i % 1500),
        }
        for i in range(n)
    ]


def seed(url: str, bodies: list[dict[str, Any]]) -> None:
    engine = make_engine(url)
    rows = [record_row(RecordIn.model_validate(b)) for b in bodies]
    factory = make_sessionmaker(engine)
    for start in range(0, len(rows), 5000):
        with session_scope(factory) as session:
            insert_records(session, rows[start : start + 5000])
    engine.dispose()


def gateway_yaml(path: Path, judge_url: str, evaluators: str) -> Path:
    path.write_text(
        f"""
endpoints:
  - name: judge
    endpoint_type: llm/v1/chat
    timeout_seconds: 30
    model:
      provider: openai
      name: judge-model
      config: {{openai_api_key: sk-bench, openai_api_base: "{judge_url}/v1"}}
  - name: support-chat
    endpoint_type: llm/v1/chat
    model: {{provider: offline, name: support-bot}}
{evaluators}
""",
        encoding="utf-8",
    )
    return path


JUDGE_YAML = """evaluators:
  - name: correctness
    type: llm_judge
    endpoint: judge
    definition: Whether the answer states the policy in force today.
    grading_prompt: Score 1 when the answer states an outdated policy, 5 when correct.
"""


def bench_checks(url: str, n: int) -> None:
    seed(url, records(n, "chk"))
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    from llmscope.evaluate.evaluations.store import CANDIDATE_COLUMNS, candidate_of

    with factory() as session:
        candidates: list[Candidate] = [
            candidate_of(r) for r in session.execute(select(*CANDIDATE_COLUMNS))
        ]
    started = time.perf_counter()
    total = sum(len(c.response or "") for c in candidates)
    floor = time.perf_counter() - started
    print(f"  baseline (read each answer's length): {n / floor:,.0f} records/s  [{load()}]")
    evaluators = parse_evaluators(CHECKS, {})
    judging = Judging(factory, None)
    for evaluator in evaluators:
        started = time.perf_counter()
        rows = judging.check_rows(evaluator, candidates)
        elapsed = time.perf_counter() - started
        failed = sum(not r["passed"] for r in rows)
        print(
            f"  {evaluator.type:>8} check only: {n / elapsed:>10,.0f} records/s "
            f"({failed} of {len(rows)} failed)  [{load()}]"
        )

    async def run() -> float:
        started = time.perf_counter()
        await evaluate_range(judging, evaluators)
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    with factory() as session:
        stored = session.scalar(select(func.count()).select_from(Evaluation))
    print(
        f"  all 6 checks end to end (read, check, store): {n / elapsed:,.0f} records/s = "
        f"{stored / elapsed:,.0f} verdicts/s ({stored} stored)  [{load()}]"
    )
    engine.dispose()
    assert total >= 0


def bench_judged(workdir: Path, pg_url: str | None, judge_url: str, n: int) -> None:
    for in_flight in (16, 64):
        url, cleanup = fresh_database("sqlite" if pg_url is None else "postgresql", pg_url, workdir)
        try:
            count = n if in_flight == 64 else n // 3
            seed(url, records(count, f"j{in_flight}"))
            config = gateway_yaml(workdir / f"judge{in_flight}.yaml", judge_url, JUDGE_YAML)
            engine = make_engine(url)
            factory = make_sessionmaker(engine)

            async def run(
                config: Path = config, factory: Any = factory, in_flight: int = in_flight
            ) -> tuple[float, Any]:
                recorder = Recorder(factory, spool_dir=workdir / "spool")
                recorder.start()
                gateway = Gateway(config, RecordWriter(recorder=recorder))
                await gateway.start()
                judging = Judging(
                    factory, gateway, concurrency=in_flight, lease=timedelta(minutes=10)
                )
                started = time.perf_counter()
                result = await evaluate_range(judging, gateway.config.evaluators)
                elapsed = time.perf_counter() - started
                await gateway.stop()
                recorder.stop()
                return elapsed, result

            elapsed, result = asyncio.run(run())
            tally = result.tally("correctness")
            ideal = in_flight / JUDGE_DELAY
            rate = tally.evaluated / elapsed
            print(
                f"  {in_flight:>2} in flight: {rate:6.1f} judged records/s "
                f"({tally.evaluated} in {elapsed:.1f} s, {tally.failed} failed); the judge alone "
                f"allows {ideal:.0f}/s: {100 * rate / ideal:.0f}%  [{load()}]"
            )
            engine.dispose()
        finally:
            cleanup()


def bench_ingest(workdir: Path, pg_url: str | None, judge_url: str, n: int) -> None:
    bodies = [
        json.dumps({"records": records(n, f"in{k}")[i : i + 100]}).encode()
        for k in range(1)
        for i in range(0, n, 100)
    ]
    headers = {"content-type": "application/json"}
    for label, evaluators in (("without evaluators", ""), ("with online judging", JUDGE_YAML)):
        url, cleanup = fresh_database("sqlite" if pg_url is None else "postgresql", pg_url, workdir)
        try:
            config = gateway_yaml(workdir / f"ingest-{len(evaluators)}.yaml", judge_url, evaluators)
            env = {"LLMSCOPE_EVAL_CONCURRENCY": "64"}
            with collector(url, config=config, data_dir=workdir / label[:4], env=env) as (base, _):
                elapsed = post_all(base, "/api/v1/records", bodies, headers, clients=8)
                time.sleep(3)
                engine = make_engine(url)
                with engine.connect() as conn:
                    judged = conn.scalar(
                        select(func.count())
                        .select_from(Evaluation)
                        .where(Evaluation.status == "done")
                    )
                engine.dispose()
            stored = count_records(url)
            print(
                f"  {label:>20}: {n / elapsed:8,.0f} records/s ingested ({stored} stored; "
                f"{judged} judged by then)  [{load()}]"
            )
        finally:
            cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records for the checks")
    parser.add_argument("--judged", type=int, default=1200, help="records judged at 64 in flight")
    parser.add_argument("--ingest", type=int, default=20_000, help="records posted per collector")
    parser.add_argument("--postgres-url", help="run on PostgreSQL instead of SQLite")
    args = parser.parse_args()
    kind = "postgresql" if args.postgres_url else "sqlite"
    judge = ServerThread(fake_judge(), free_port()).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            print(f"Built-in checks, {args.records:,} records, {kind}:")
            url, cleanup = fresh_database(kind, args.postgres_url, workdir)
            try:
                bench_checks(url, args.records)
            finally:
                cleanup()
            print(f"LLM judge through the gateway, fake judge answering in {JUDGE_DELAY:.1f} s:")
            bench_judged(workdir, args.postgres_url, judge.url, args.judged)
            print(f"Ingest through a real collector, {args.ingest:,} records in batches of 100:")
            bench_ingest(workdir, args.postgres_url, judge.url, args.ingest)
    finally:
        judge.stop()


if __name__ == "__main__":
    main()
