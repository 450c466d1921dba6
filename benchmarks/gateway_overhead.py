"""Gateway overhead: the same load straight at a provider and through the gateway, one run.

A fake OpenAI-format provider answering after ``--delay-ms`` (default 100) runs in its own
process; a real ``llmscope serve --config`` (SQLite store, every call recorded) proxies to it.
The client sends ``--requests`` chat calls at ``--concurrency`` in flight straight at the
provider and as many through the gateway, in alternating rounds (after a warm-up of each) so
both see the same background load, and prints p50/p95 of both and what the gateway adds.
Target on 2 cores: <= 3 ms added at p50, <= 15 ms at p95.

A second gateway, the same build with ``LLMSCOPE_METRICS=false``, takes its own rounds in the
same alternation: the difference is what metrics and cost accounting cost a call (target
<= 0.1 ms at p50).

``--scenario route`` sends the gateway's calls to a traffic-split route (two endpoints, 50/50,
with a fallback) instead of an endpoint; ``--scenario tools`` offers a function tool on both
paths, so every answer is a tool call the gateway passes through and records.

    python benchmarks/gateway_overhead.py --requests 1000 --concurrency 20 [--scenario route]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import process_cpu_seconds  # the sibling benchmarks module

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.collector.gateway.fake_provider import OPENAI_KEY, FakeProvider  # noqa: E402
from tests.conftest import free_port, wait_for_http  # noqa: E402

CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: $BENCH_OPENAI_KEY
        openai_api_base: {base}/v1
  - name: chat-b
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: $BENCH_OPENAI_KEY
        openai_api_base: {base}/v1
routes:
  - name: split
    task_type: llm/v1/chat
    destinations:
      - {{name: chat, traffic_percentage: 50}}
      - {{name: chat-b, traffic_percentage: 50}}
    fallbacks: [chat-b]
"""
TOOL = {
    "type": "function",
    "function": {
        "name": "track_order",
        "description": "Where an order is",
        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
    },
}


def serve_fake(port: int, delay: float) -> None:
    import uvicorn

    app = FakeProvider(delay=delay).app
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def run_load(
    url: str,
    headers: dict[str, str],
    model: str,
    requests: int,
    concurrency: int,
    tools: bool = False,
) -> list[float]:
    latencies: list[float] = []
    # One small client per worker: httpx's pool costs CPU per connection it holds, and the
    # load generator shares the two cores with what it measures.
    clients = [httpx.AsyncClient(timeout=30) for _ in range(concurrency)]
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            body: dict[str, object] = {
                "model": model,
                "messages": [{"role": "user", "content": f"Where is my order {i}?"}],
            }
            if tools:
                body["tools"] = [TOOL]
            started = time.perf_counter()
            response = await client.post(url, json=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()

    try:
        await asyncio.gather(*(worker(client) for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return latencies


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)
    )


def accounting_cpu_us(calls: int = 20_000) -> float:
    """CPU per call of what metrics add to a gateway call (price, count, the in-flight gauges),
    timed in this process: the figure the latency difference above is too noisy to show."""
    from llmscope.collector.costs.accounting import Accounting
    from llmscope.collector.costs.budgets import BudgetTracker
    from llmscope.config import Settings
    from llmscope.metrics import Metrics

    metrics = Metrics()
    accounting = Accounting(metrics, BudgetTracker(None, Settings()))  # type: ignore[arg-type]
    row = {
        "id": "x", "source": "gateway", "endpoint": "chat", "model": "gpt-4o-mini",
        "template_name": "faq", "template_version": "2", "status": "ok", "latency_ms": 120.0,
        "ttft_ms": 40.0, "input_tokens": 30, "output_tokens": 40,
    }  # fmt: skip
    start = time.process_time()
    for _ in range(calls):
        rows = [dict(row)]
        accounting.price(rows)
        accounting.counted(rows)
        for requests in (1, 0):  # admission's gauges, set on the way in and out
            metrics.inflight_requests.set(requests)
            metrics.inflight_body_bytes.set(requests * 900)
    return (time.process_time() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per path")
    parser.add_argument("--scenario", choices=("plain", "route", "tools"), default="plain")
    parser.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.delay_ms / 1000)
        return 0
    if args.requests < 500 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--requests must be >= 500, --concurrency and --rounds >= 1")

    with tempfile.TemporaryDirectory() as tmp:
        fake_port, gateway_port, plain_port = free_port(), free_port(), free_port()
        fake_url, gateway_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gateway_port}"
        config = Path(tmp) / "gateway.yaml"
        config.write_text(CONFIG.format(base=fake_url))
        env = {**os.environ, "BENCH_OPENAI_KEY": OPENAI_KEY, "LLMSCOPE_DATA_DIR": tmp}
        database_url = f"sqlite:///{tmp}/bench.db"
        fake = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-fake",
                str(fake_port),
                "--delay-ms",
                str(args.delay_ms),
            ],
            env=env,
        )
        gateway = subprocess.Popen(
            [sys.executable, "-m", "llmscope", "serve", "--port", str(gateway_port),
             "--config", str(config), "--database-url", database_url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        plain_url = f"http://127.0.0.1:{plain_port}"
        plain = subprocess.Popen(
            [sys.executable, "-m", "llmscope", "serve", "--port", str(plain_port),
             "--config", str(config), "--database-url", f"sqlite:///{tmp}/plain.db"],
            env={**env, "LLMSCOPE_METRICS": "false", "LLMSCOPE_DATA_DIR": f"{tmp}/plain"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_http(f"{fake_url}/v1/models")
            wait_for_http(f"{gateway_url}/health", gateway)
            wait_for_http(f"{plain_url}/health", plain)
            assert httpx.get(f"{plain_url}/metrics").status_code == 404  # really off
            direct_headers = {"Authorization": f"Bearer {OPENAI_KEY}"}
            direct = (f"{fake_url}/v1/chat/completions", direct_headers, "gpt-4o-mini")
            gateway_model = "split" if args.scenario == "route" else "chat"
            tools = args.scenario == "tools"
            through = (f"{gateway_url}/v1/chat/completions", {}, gateway_model)
            unmetered = (f"{plain_url}/v1/chat/completions", {}, gateway_model)
            results: dict[str, list[float]] = {"direct": [], "gateway": [], "no-metrics": []}
            paths = {"direct": direct, "gateway": through, "no-metrics": unmetered}
            for url, headers, model in paths.values():  # warm both up: connections, caches
                asyncio.run(
                    run_load(url, headers, model, 2 * args.concurrency, args.concurrency, tools)
                )
            # Alternate rounds so both paths see the same background load on a shared machine.
            per_round = args.requests // args.rounds
            cpu_before = process_cpu_seconds(gateway.pid)
            plain_before = process_cpu_seconds(plain.pid)
            for _ in range(args.rounds):
                for name, (url, headers, model) in paths.items():
                    results[name] += asyncio.run(
                        run_load(url, headers, model, per_round, args.concurrency, tools)
                    )
            cpu_used = process_cpu_seconds(gateway.pid) - cpu_before
            plain_cpu = process_cpu_seconds(plain.pid) - plain_before
            scrape = httpx.get(f"{gateway_url}/metrics").text
        finally:
            gateway.terminate()
            gateway.wait(30)
            plain.terminate()
            plain.wait(30)
            fake.terminate()
            fake.wait(30)
        from sqlalchemy import func, select

        from llmscope.db import make_engine
        from llmscope.db.models import Record

        engine = make_engine(database_url)
        with engine.connect() as conn:
            recorded = conn.scalar(select(func.count()).select_from(Record))
        engine.dispose()

    print(
        f"{len(results['gateway'])} chat calls per path, {args.concurrency} concurrent, "
        f"{args.rounds} alternating rounds, provider delay "
        f"{args.delay_ms:.0f} ms, SQLite store, scenario {args.scenario}"
    )
    print(f"{'':10} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9}")
    for name, values in results.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"{name:10} {p50:9.2f} {p95:9.2f} {statistics.fmean(values):9.2f}")
    added50 = percentile(results["gateway"], 50) - percentile(results["direct"], 50)
    added95 = percentile(results["gateway"], 95) - percentile(results["direct"], 95)
    print(f"{'added':10} {added50:9.2f} {added95:9.2f}   (target <= 3 ms p50, <= 15 ms p95)")
    calls = len(results["gateway"])
    print(f"gateway CPU per call: {cpu_used / calls * 1000:.2f} ms (server, upstream call, record)")
    metered50 = percentile(results["gateway"], 50) - percentile(results["no-metrics"], 50)
    metered95 = percentile(results["gateway"], 95) - percentile(results["no-metrics"], 95)
    print(
        f"metrics and cost add {metered50:.2f} ms at p50, {metered95:.2f} ms at p95 "
        f"(gateway vs the same build with LLMSCOPE_METRICS=false; target <= 0.1 ms p50)"
    )
    print(
        f"CPU per call with / without metrics: {cpu_used / calls * 1000:.3f} / "
        f"{plain_cpu / calls * 1000:.3f} ms"
    )
    print(f"the same work timed in-process: {accounting_cpu_us():.1f} us of CPU per call")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in scrape.splitlines()
        if line.startswith("llmscope_calls_total{")
    )
    print(f"llmscope_calls_total on the metered gateway: {counted:.0f}")
    print(f"machine load average after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    expected = calls + 2 * args.concurrency
    print(f"records stored by the gateway: {recorded} of {expected} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
