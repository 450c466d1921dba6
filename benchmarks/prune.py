"""Retention: how long ``llmscope prune`` takes and how long it holds up a writer beside it.

The store holds ``--records`` calls, half of them older than the cutoff, each with two feedback
events, a trace row, two agent steps and a place in an analysis run. Each build deletes the old
half while a writer thread inserts one record every 20 ms and times each insert (what a
collector beside the prune would feel):

- **baseline**: one ``DELETE FROM records WHERE timestamp < cutoff`` in one transaction, the
  foreign keys' cascades taking feedback and trace rows (it leaves spans and run assignments
  behind, so it does less work than a prune);
- **prune**: ``llmscope.db.prune.prune`` (batches of 1,000 calls, one transaction each, every
  dependent table).

Each build runs on a fresh store seeded the same way.

    python benchmarks/prune.py --records 40000 \\
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from common import fresh_database  # noqa: E402
from sqlalchemy import Engine, delete, insert  # noqa: E402

from llmscope.db import make_engine  # noqa: E402
from llmscope.db.models import (  # noqa: E402
    AnalysisRun,
    Feedback,
    Record,
    RunAssignment,
    StoredSpan,
    TraceSpan,
)
from llmscope.db.prune import prune  # noqa: E402

NOW = datetime(2026, 11, 20, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
CHUNK = 2000


def seed(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(AnalysisRun),
            [
                {
                    "id": "run",
                    "baseline_start": NOW,
                    "baseline_end": NOW,
                    "current_start": NOW,
                    "current_end": NOW,
                }
            ],
        )
    for start in range(0, n, CHUNK):
        ids = range(start, min(n, start + CHUNK))
        # even calls are 60 days old (pruned), odd ones a day old (kept)
        when = {i: NOW - timedelta(days=60 if i % 2 == 0 else 1, seconds=i) for i in ids}
        with engine.begin() as conn:
            conn.execute(
                insert(Record),
                [
                    {
                        "id": f"r{i}",
                        "timestamp": when[i],
                        "received_at": when[i],
                        "prompt": f"question number {i} about a refund for an order",
                        "response": "an answer " * 20,
                        "trace_id": f"{i:032x}",
                        "span_id": f"{i:016x}",
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(Feedback),
                [
                    {"record_id": f"r{i}", "thumb": t, "created_at": when[i]}
                    for i in ids
                    for t in ("up", "down")
                ],
            )
            conn.execute(
                insert(TraceSpan),
                [
                    {"trace_id": f"{i:032x}", "span_id": f"{i:016x}", "record_id": f"r{i}"}
                    for i in ids
                ],
            )
            conn.execute(
                insert(StoredSpan),
                [
                    {
                        "trace_id": f"{i:032x}",
                        "span_id": f"{i:015x}{k}",
                        "name": "lookup_order",
                        "kind": "tool",
                        "start": when[i],
                        "status": "ok",
                        "attributes": {"input.value": "order 123"},
                        "received_at": when[i],
                    }
                    for i in ids
                    for k in (1, 2)
                ],
            )
            conn.execute(
                insert(RunAssignment),
                [
                    {"run_id": "run", "record_id": f"r{i}", "cluster_id": 0, "window": "current",
                     "x": 0.0, "y": 0.0}
                    for i in ids
                ],
            )  # fmt: skip


def baseline(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Record).where(Record.timestamp < CUTOFF))


def pruned(engine: Engine) -> None:
    prune(engine, CUTOFF)


def measure(url: str, build: Callable[[Engine], None]) -> tuple[float, list[float]]:
    """(seconds the build took, the writer's insert latencies in ms while it ran)."""
    engine = make_engine(url)
    writer = make_engine(url)
    latencies: list[float] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            with writer.begin() as conn:
                conn.execute(
                    insert(Record),
                    [{"id": f"live{i}", "timestamp": NOW, "received_at": NOW, "prompt": "new"}],
                )
            latencies.append(1000 * (time.perf_counter() - started))
            i += 1
            stop.wait(0.02)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.3)
    started = time.perf_counter()
    build(engine)
    seconds = time.perf_counter() - started
    stop.set()
    thread.join()
    engine.dispose()
    writer.dispose()
    return seconds, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--out", default="benchmarks/results/prune.md")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    lines = [
        "# Retention: prune against one DELETE",
        "",
        f"Command: `python benchmarks/prune.py --records {args.records}"
        + (" --postgres-url URL`" if args.postgres_url else "`"),
        f"Load average at the start: {' '.join(load)}",
        "",
        "<!-- --8<-- [start:table] -->",
        "| store | build | calls deleted | seconds | calls/s | writer p50 ms | writer p99 ms "
        "| writer max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    deleted = (args.records + 1) // 2
    with tempfile.TemporaryDirectory() as work:
        for kind in backends:
            for name, build in (("one DELETE (baseline)", baseline), ("llmscope prune", pruned)):
                url, cleanup = fresh_database(kind, args.postgres_url, Path(work))
                try:
                    engine = make_engine(url)
                    seed(engine, args.records)
                    engine.dispose()
                    seconds, waits = measure(url, build)
                finally:
                    cleanup()
                p50, p99 = np.percentile(waits, [50, 99]) if waits else (float("nan"),) * 2
                lines.append(
                    f"| {kind} | {name} | {deleted:,} | {seconds:.2f} | {deleted / seconds:,.0f} "
                    f"| {p50:.1f} | {p99:.1f} | {max(waits, default=float('nan')):.0f} |"
                )
                print(lines[-1], flush=True)
    lines.append("<!-- --8<-- [end:table] -->")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
