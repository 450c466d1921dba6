"""What "one call, one record" costs the write path: ``store_rows`` (insert, evaluations waiting,
nesting) against the insert it wraps (``insert_records`` + ``adopt_pending``, the write path
before nesting), the baseline, on the same store in alternating rounds.

Batches of 512 traced rows, each in its own transaction (an OTLP export, a recorder batch):

- ``alone``: every row is the only LLM span of its trace (the worst case: every trace is
  looked up, none merges);
- ``pairs``: 256 calls traced twice (a LangChain span and the OpenAI span inside it), which
  ``store_rows`` merges into 256 records.

    python benchmarks/nesting_overhead.py --batches 8 --rounds 3 \\
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import fresh_database  # the sibling benchmarks' helpers
from sqlalchemy.orm import Session

from llmscope.collector.ingest.evaluations import adopt_pending
from llmscope.collector.ingest.nesting import store_rows
from llmscope.collector.ingest.store import insert_records
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.schema import RecordIn, record_row

BATCH = 512


def _row(trace: str, span: str, parent: str | None) -> dict[str, Any]:
    record = RecordIn(
        endpoint="support-bot",
        provider="openai",
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"How do I reset my password? {span}"}],
        response="Open Settings, then Security.",
        input_tokens=12,
        output_tokens=9,
        trace_id=trace,
        span_id=span,
    )
    return {**record_row(record, source="otlp"), "parent_span_id": parent}


def batch(kind: str) -> list[dict[str, Any]]:
    if kind == "alone":
        return [_row(uuid.uuid4().hex, uuid.uuid4().hex[:16], None) for _ in range(BATCH)]
    rows = []
    for _ in range(BATCH // 2):
        trace, outer = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        rows += [_row(trace, outer, None), _row(trace, uuid.uuid4().hex[:16], outer)]
    return rows


def _plain(session: Session, rows: list[dict[str, Any]]) -> None:
    adopt_pending(session, insert_records(session, rows))


def rate(url: str, kind: str, write: Callable[..., Any], batches: int) -> float:
    """Rows per second for ``batches`` batches, each committed on its own."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    work = [batch(kind) for _ in range(batches)]  # built before the clock starts
    started = time.perf_counter()
    for rows in work:
        with session_scope(factory) as session:
            write(session, rows)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return batches * BATCH / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    stores = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(f"{BATCH} rows per batch, {args.batches} batches, best of {args.rounds} rounds")
    print(
        f"{'store':11} {'batches':7} {'baseline rows/s':>16} {'store_rows rows/s':>18} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as workdir:
        for store in stores:
            url, cleanup = fresh_database(store, args.postgres_url, Path(workdir))
            try:
                for kind in ("alone", "pairs"):
                    best = {"baseline": 0.0, "nesting": 0.0}
                    for _ in range(args.rounds):  # alternating, so load drifts hit both
                        best["baseline"] = max(
                            best["baseline"], rate(url, kind, _plain, args.batches)
                        )
                        best["nesting"] = max(
                            best["nesting"], rate(url, kind, store_rows, args.batches)
                        )
                    ratio = best["nesting"] / best["baseline"]
                    print(
                        f"{store:11} {kind:7} {best['baseline']:16,.0f} "
                        f"{best['nesting']:18,.0f} {ratio:6.2f}"
                    )
            finally:
                cleanup()
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
