"""Ingest throughput: records/s through the batch API vs a raw SQLAlchemy Core bulk insert.

For each store (SQLite file; PostgreSQL when --postgres-url is given) the script starts a real
``llmscope serve`` process, posts N records in batches over loopback from C concurrent clients,
then, into a fresh copy of the same database, inserts the very same rows with a plain Core
``insert()`` executemany (the store's own limit). Target: >= 10,000 records/s on SQLite and
>= 50% of the raw rate. The API is also measured with ``LLMSCOPE_METRICS=false`` (the same
build without metrics and cost accounting), in ``--rounds`` alternating rounds each (best of
each kept): metrics may cost at most 5% of the throughput.

    python benchmarks/ingest.py --records 50000 \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import (  # the sibling benchmarks module
    collector,
    count_records,
    fresh_database,
    post_all,
    tree_cpu_seconds,
)
from sqlalchemy import insert

from llmscope.db import make_engine
from llmscope.db.models import Base, Record
from llmscope.schema import RecordIn, record_row

QUESTIONS = [
    "How do I reset my password?",
    "Why was my card declined at the store yesterday?",
    "Can I change the delivery address of an order that already shipped?",
    "What are your opening hours on public holidays?",
    "The app crashes when I upload a photo, what can I do?",
]


def make_records(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        out.append(
            {
                "id": f"bench-{i}-{uuid.uuid4().hex[:8]}",
                "timestamp": f"2026-11-{1 + i % 20:02d}T{i % 24:02d}:00:00Z",
                "endpoint": "chat",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are a helpful support assistant."},
                    {"role": "user", "content": f"{q} (ticket {i})"},
                ],
                "response": "Here is what you can do: open Settings, then follow the steps. " * 3,
                "template": {"name": "support", "version": "3", "variables": {"question": q}},
                "input_tokens": 40 + i % 50,
                "output_tokens": 60 + i % 80,
                "latency_ms": 300.0 + i % 700,
                "ttft_ms": 80.0,
                "user_id": f"user-{i % 500}",
                "session_id": f"session-{i % 2000}",
                "tags": {"env": "prod", "team": "support"},
            }
        )
    return out


def bench_api(
    url: str,
    records: list[dict[str, Any]],
    batch: int,
    clients: int,
    workers: int,
    metrics: bool = True,
) -> tuple[float, float]:
    """Records/s, and the collector's CPU (all its processes) per record in microseconds."""
    bodies = [
        json.dumps({"records": records[i : i + batch]}).encode()
        for i in range(0, len(records), batch)
    ]
    headers = {"content-type": "application/json"}
    env = {"LLMSCOPE_METRICS": "true" if metrics else "false"}
    with collector(url, workers=workers, env=env) as (base, proc):
        cpu_before = tree_cpu_seconds(proc.pid)
        elapsed = post_all(base, "/api/v1/records", bodies, headers, clients)
        cpu = tree_cpu_seconds(proc.pid) - cpu_before
    if (stored := count_records(url)) != len(records):
        raise RuntimeError(f"stored {stored} of {len(records)} acknowledged records")
    return len(records) / elapsed, cpu / len(records) * 1e6


def bench_raw(url: str, records: list[dict[str, Any]], batch: int) -> float:
    # Rows exactly as the API would store them, converted outside the timed part.
    rows = [record_row(RecordIn.model_validate(r)) for r in records]
    engine = make_engine(url)
    table = Base.metadata.tables[Record.__tablename__]
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with engine.begin() as conn:
            conn.execute(insert(table), rows[i : i + batch])
    elapsed = time.perf_counter() - start
    engine.dispose()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="collector worker processes")
    parser.add_argument("--postgres-url", default=os.environ.get("LLMSCOPE_TEST_DATABASE_URL"))
    parser.add_argument("--rounds", type=int, default=2, help="API rounds with and without metrics")
    args = parser.parse_args()

    records = make_records(args.records)
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(
        f"{args.records} records, batches of {args.batch}, {args.clients} clients, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'store':<12}{'API rec/s':>12}{'no metrics':>12}{'metrics':>9}{'raw rec/s':>12}"
        f"{'API/raw':>10}{'CPU us/rec':>12}{'no metrics':>12}{'metrics':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            best = {True: 0.0, False: 0.0}
            cpu: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.rounds):
                for metrics in (False, True):  # alternating: both see the same load
                    url, cleanup = fresh_database(kind, args.postgres_url, Path(tmp))
                    try:
                        rate, per_record = bench_api(
                            url, records, args.batch, args.clients, args.workers, metrics
                        )
                    finally:
                        cleanup()
                    best[metrics] = max(best[metrics], rate)
                    cpu[metrics].append(per_record)
            raw_url, raw_cleanup = fresh_database(kind, args.postgres_url, Path(tmp))
            try:
                raw = bench_raw(raw_url, records, args.batch)
            finally:
                raw_cleanup()
            api, plain = best[True], best[False]
            cost = 1 - api / plain
            cpu_on, cpu_off = min(cpu[True]), min(cpu[False])
            print(
                f"{kind:<12}{api:>12,.0f}{plain:>12,.0f}{cost:>+9.1%}{raw:>12,.0f}"
                f"{api / raw:>10.0%}{cpu_on:>12,.0f}{cpu_off:>12,.0f}{cpu_on / cpu_off - 1:>+9.1%}"
            )
    print(
        "metrics columns: throughput lost with metrics on (target <= 5%), best of the rounds; "
        "the collector's CPU per record (all its processes), least of the rounds"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
