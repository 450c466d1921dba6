"""Load, flood and loss check: K concurrent clients for T seconds against one collector.

Three scenarios against a real ``llmscope serve`` (gateway with an offline endpoint) on a fresh
store, all on loopback, each bounded in time and count:

- ``ingest``: clients POST batches to ``/api/v1/records`` (client-given ids);
- ``gateway``: clients call ``/v1/chat/completions`` (the record id comes back in
  ``X-LLMScope-Record-Id``);
- ``flood``: many clients POST 1 MiB bodies at once: the collector must refuse what it cannot
  hold (503 + Retry-After) and its memory must stay bounded;
- ``unbounded`` (the baseline for ``flood``): the same flood with admission control switched
  off, to show what the in-flight budget saves.

For each: requests/s, records/s, p50/p99 latency, status counts, the collector's peak resident
memory (VmHWM), and acknowledged-but-missing records after a graceful stop (must be 0).

    python benchmarks/load.py --clients 32 --seconds 20 \
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import collector, fresh_database  # the sibling benchmarks module
from sqlalchemy import select

from llmscope.db import make_engine
from llmscope.db.models import Record

GATEWAY_YAML = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: support-bot, config: {latency_ms: 20}}
"""
MAX_REQUESTS_PER_CLIENT = 100_000  # a hard bound on top of the time limit
UNBOUNDED = {
    "LLMSCOPE_MAX_INFLIGHT_REQUESTS": "1000000",
    "LLMSCOPE_MAX_INFLIGHT_BODY_BYTES": str(1 << 50),
}


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)
    acked: set[str] = field(default_factory=set)
    peak_rss_mb: float = 0.0
    missing: int = 0

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
        total = sum(self.statuses.values())
        errors = total - self.statuses.get(200, 0) - self.statuses.get(201, 0)
        return (
            f"{self.name:<10}{total / self.seconds:>9,.0f}{len(self.acked) / self.seconds:>11,.0f}"
            f"{p50:>9.1f}{p99:>9.1f}{errors:>8}{self.peak_rss_mb:>10.0f}{self.missing:>9}   "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items(), key=str))
        )


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (uvicorn workers), in MiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


async def drive(name: str, base: str, clients: int, seconds: float, batch: int) -> Result:
    result = Result(name)
    deadline = time.monotonic() + seconds
    body_1mib = b'{"records": [{"prompt": "' + b"x" * (1 << 20) + b'"}]}'

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for i in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() >= deadline:
                    return
                start = time.perf_counter()
                try:
                    if name == "ingest":
                        ids = [f"{n}-{i}-{k}-{uuid.uuid4().hex[:6]}" for k in range(batch)]
                        records = [
                            {"id": r, "endpoint": "chat", "model": "m", "prompt": f"question {r}",
                             "response": "answer", "input_tokens": 12, "output_tokens": 40}
                            for r in ids
                        ]  # fmt: skip
                        answer = await http.post("/api/v1/records", json={"records": records})
                        if answer.status_code == 201:
                            result.acked.update(answer.json()["ids"])
                    elif name == "gateway":
                        answer = await http.post(
                            "/v1/chat/completions",
                            json={"model": "chat", "messages": [
                                {"role": "user", "content": f"How do I reset my password? {n}-{i}"}
                            ]},
                        )  # fmt: skip
                        if answer.status_code == 200:
                            result.acked.add(answer.headers["x-llmscope-record-id"])
                    else:  # flood, unbounded
                        answer = await http.post(
                            "/api/v1/records", content=body_1mib,
                            headers={"content-type": "application/json"},
                        )  # fmt: skip
                        if answer.status_code == 201:
                            result.acked.update(answer.json()["ids"])
                    result.statuses[answer.status_code] += 1
                    if answer.status_code == 503:
                        await asyncio.sleep(float(answer.headers.get("retry-after", "1")) / 10)
                except httpx.HTTPError as exc:
                    result.statuses[type(exc).__name__] += 1
                result.latencies.append(time.perf_counter() - start)

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    result.seconds = time.monotonic() - started
    return result


def missing_records(url: str, acked: set[str]) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Record.id)))
    engine.dispose()
    return len(acked - stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=50, help="records per ingest request")
    parser.add_argument("--flood-clients", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--postgres-url", default=os.environ.get("LLMSCOPE_TEST_DATABASE_URL"))
    args = parser.parse_args()
    if args.seconds > 300 or args.clients > 1000 or args.flood_clients > 2000:
        parser.error("bounded: at most 300 s, 1000 clients, 2000 flood clients")

    stores = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(
        f"{args.clients} clients x {args.seconds:.0f} s per scenario ({args.flood_clients} "
        f"for the flood), {args.workers} worker(s), {os.cpu_count()} cores, loopback only"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in stores:
            print(f"\n{kind}")
            print(
                f"{'scenario':<10}{'req/s':>9}{'records/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'errors':>8}{'peak MiB':>10}{'missing':>9}   statuses"
            )
            for scenario in ("ingest", "gateway", "flood", "unbounded"):
                workdir = Path(tmp) / f"{kind}-{scenario}"
                workdir.mkdir()
                url, cleanup = fresh_database(kind, args.postgres_url, workdir)
                config = workdir / "gateway.yaml"
                config.write_text(GATEWAY_YAML)
                flood = scenario in ("flood", "unbounded")
                clients = args.flood_clients if flood else args.clients
                limits = UNBOUNDED if scenario == "unbounded" else {}
                try:
                    with collector(
                        url,
                        config=config,
                        workers=args.workers,
                        data_dir=workdir / "data",
                        env=limits,
                    ) as (base, proc):
                        result = asyncio.run(
                            drive(scenario, base, clients, args.seconds, args.batch)
                        )
                        # the peak before the graceful stop (which drains the recorder)
                        result.peak_rss_mb = peak_rss_mb(proc.pid)
                    result.missing = missing_records(url, result.acked)
                finally:
                    cleanup()
                print(result.line())


if __name__ == "__main__":
    main()
