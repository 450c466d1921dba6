"""Storage per 1,000 agent steps (the ``spans`` table) on SQLite and PostgreSQL.

Steps are made by the collector's own mapping (``collector/otlp/steps.py``) from OTLP spans
shaped like an OpenInference-instrumented agent's: tool calls (JSON arguments and result),
retrievers (three documents), chains and agents (input and output values). They are written
by the collector's insert (``insert_steps``); the size is the table's with its indexes:
PostgreSQL's ``pg_total_relation_size``, SQLite's file growth after ``VACUUM``.

    python benchmarks/span_storage.py --steps 20000 \\
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import fresh_database  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span  # noqa: E402
from sqlalchemy import text  # noqa: E402

from llmscope.collector.ingest.store import insert_steps  # noqa: E402
from llmscope.collector.otlp.attributes import attributes_of  # noqa: E402
from llmscope.collector.otlp.steps import step_row  # noqa: E402
from llmscope.db import make_engine, make_sessionmaker, session_scope  # noqa: E402

WORDS = ("refund order account card transfer balance limit fee policy delivery status "
         "address payment invoice support customer request days working").split()  # fmt: skip


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _span(rng: random.Random, trace: bytes, parent: bytes, kind: str) -> Span:
    attrs: dict[str, str] = {"openinference.span.kind": kind}
    if kind == "TOOL":
        attrs["tool.name"] = rng.choice(["lookup_order", "issue_refund", "search_faq"])
        attrs["input.value"] = json.dumps({"query": _text(rng, 12), "limit": 5})
        attrs["output.value"] = json.dumps({"result": _text(rng, 60)})
    elif kind == "RETRIEVER":
        attrs["input.value"] = _text(rng, 10)
        for i in range(3):
            attrs[f"retrieval.documents.{i}.document.content"] = _text(rng, 70)
            attrs[f"retrieval.documents.{i}.document.score"] = f"{rng.random():.3f}"
    else:
        attrs["input.value"] = _text(rng, 25)
        attrs["output.value"] = _text(rng, 50)
    start = 1_764_000_000_000_000_000 + rng.randrange(10**12)
    return Span(
        trace_id=trace,
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=f"{kind.lower()} step",
        start_time_unix_nano=start,
        end_time_unix_nano=start + rng.randrange(10**6, 10**9),
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()],
    )


def make_steps(n: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    kinds = ["TOOL"] * 4 + ["RETRIEVER"] * 2 + ["CHAIN"] * 2 + ["AGENT"] * 2
    rows = []
    while len(rows) < n:
        trace, root = os.urandom(16), os.urandom(8)
        for _ in range(rng.randint(3, 8)):
            span = _span(rng, trace, root, rng.choice(kinds))
            row = step_row(span, attributes_of(span.attributes))
            assert row is not None
            rows.append(row)
    return rows[:n]


def measure(kind: str, url: str, rows: list[dict[str, object]]) -> tuple[float, float]:
    """(bytes per 1,000 steps, seconds to insert them all)."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    path = Path(url.removeprefix("sqlite:///")) if kind == "sqlite" else None
    if path is not None:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
        empty = path.stat().st_size
    started = time.perf_counter()
    for chunk in range(0, len(rows), 1000):
        with session_scope(factory) as session:
            insert_steps(session, rows[chunk : chunk + 1000], redact_pii=False)
    seconds = time.perf_counter() - started
    if path is not None:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
        size = path.stat().st_size - empty
    else:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE spans"))
            size = conn.execute(text("SELECT pg_total_relation_size('spans')")).scalar_one()
    engine.dispose()
    return 1000 * size / len(rows), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--out", default="benchmarks/results/span_storage.md")
    args = parser.parse_args()
    rows = make_steps(args.steps)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    lines = [
        "# Storage per 1,000 agent steps",
        "",
        f"Command: `python benchmarks/span_storage.py --steps {args.steps}"
        + (" --postgres-url URL`" if args.postgres_url else "`"),
        f"Load average at the start: {' '.join(load)}",
        "",
        "<!-- --8<-- [start:table] -->",
        "| store | steps | KiB per 1,000 steps | insert seconds |",
        "|---|---|---|---|",
    ]
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    with tempfile.TemporaryDirectory() as work:
        for kind in backends:
            url, cleanup = fresh_database(kind, args.postgres_url, Path(work))
            try:
                per_thousand, seconds = measure(kind, url, rows)
            finally:
                cleanup()
            lines.append(f"| {kind} | {len(rows):,} | {per_thousand / 1024:,.0f} | {seconds:.1f} |")
            print(lines[-1], flush=True)
    lines.append("<!-- --8<-- [end:table] -->")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
