"""Gateway overhead: the same calls straight at a provider and through gateways, in one run.

A lean fake OpenAI-format provider (raw asyncio HTTP/1.1, keep-alive, its own process, so it
takes little of the cores it shares) answers after ``--delay-ms`` (default 20). Real
``llmscope serve --config`` processes (SQLite store, every call recorded, metrics and cost on)
proxy to it: this source tree and, with ``--compare NAME=TREE``, any other tree (a
``git worktree`` or ``git archive`` of main, say), so before and after are measured side by
side. The client sends ``--requests`` chat calls per path at ``--concurrency`` in flight, in
alternating rounds (after a warm-up of each) so every path sees the same background load, and
prints per path: p50/p95 latency, what the gateway adds at p50 (against the direct calls),
the gateway's CPU per call (all its processes), calls/s, and the records stored.

- ``--stream``: streaming calls; the latency figures are the time to the first event (TTFT).
- ``--workers N``: each gateway runs ``serve --workers N``.
- ``--masking``: one more gateway of this tree with ``LLMSCOPE_REDACT_PII=true``, so masking's
  own cost shows against the plain one.
- ``--no-metrics``: one more gateway of this tree with ``LLMSCOPE_METRICS=false``.
- ``--otlp-grpc``: the gateways keep the OTLP/gRPC receiver ``serve`` starts by default (off
  otherwise: several gateways, and other collectors on the machine, would all want port 4317).
- ``--scenario route|tools``: calls to a 50/50 traffic-split route with a fallback, or offering a
  function tool (every answer is a tool call the gateway passes through and records).

Targets on 2 cores: added p50 <= 1.0 ms one call at a time against a 20 ms provider; CPU
<= 0.5 ms per call at 20 in flight, and at 200 in flight with 4 workers; TTFT added <= 1 ms::

    git archive main | (mkdir -p /tmp/main && tar -x -C /tmp/main)
    python benchmarks/gateway_overhead.py --concurrency 1 --compare main=/tmp/main --masking
    python benchmarks/gateway_overhead.py --concurrency 20 --compare main=/tmp/main
    python benchmarks/gateway_overhead.py --concurrency 200 --workers 4 --compare main=/tmp/main
    python benchmarks/gateway_overhead.py --concurrency 200 --compare main=/tmp/main
    python benchmarks/gateway_overhead.py --concurrency 1 --stream --compare main=/tmp/main
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from common import count_records, free_port, tree_cpu_seconds  # the sibling benchmarks module

REPO = Path(__file__).resolve().parents[1]
OPENAI_KEY = "sk-bench-0000"

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


# --- the fake provider ------------------------------------------------------------------------
def _answer(tools: bool) -> bytes:
    message: dict[str, object] = {"role": "assistant", "content": "Your order ships tomorrow."}
    if tools:
        call = {"name": "track_order", "arguments": '{"order": "42"}'}
        tool_calls = [{"id": "call_1", "type": "function", "function": call}]
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764900000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }).encode()  # fmt: skip


def _events() -> bytes:
    def chunk(delta: dict[str, object], usage: object = None) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": None}] if delta else []
        data = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764900000,
                "model": "gpt-4o-mini", "choices": choices, "usage": usage}  # fmt: skip
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    words = ["Your", " order", " ships", " tomorrow."]
    out = chunk({"role": "assistant", "content": ""})
    out += b"".join(chunk({"content": w}) for w in words)
    out += chunk({}, {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16})
    return out + b"data: [DONE]\n\n"


class _Fake(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; every POST answered after the delay (stream or whole)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            asyncio.get_running_loop().call_later(self.delay, self._reply, body)

    def _reply(self, body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if b'"stream": true' in body or b'"stream":true' in body:
            events = _events()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            head += b"transfer-encoding: chunked\r\n\r\n"
            chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(events), events)
            self.transport.write(head + chunked)
            return
        answer = _answer(b'"tools"' in body)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        self.transport.write(head + b"content-length: %d\r\n\r\n" % len(answer) + answer)


def serve_fake(port: int, delay: float) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Fake(delay), "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(run())


# --- the load -----------------------------------------------------------------------------------
@dataclass
class Path_:
    name: str
    url: str
    model: str
    headers: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    database_url: str | None = None
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    seconds: float = 0.0
    calls: int = 0


async def run_load(path: Path_, requests: int, concurrency: int, stream: bool, tools: bool) -> None:
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in counter:
                body: dict[str, object] = {
                    "model": path.model,
                    "messages": [{"role": "user", "content": f"Where is my order {i}?"}],
                }
                if tools:
                    body["tools"] = [TOOL]
                if stream:
                    body["stream"] = True
                started = time.perf_counter()
                async with session.post(path.url, json=body, headers=path.headers) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{path.name}: HTTP {response.status}")
                    if stream:
                        async for line in response.content:  # time to the first event
                            if line.startswith(b"data:"):
                                path.latencies.append((time.perf_counter() - started) * 1000)
                                break
                        await response.read()
                    else:
                        await response.read()
                        path.latencies.append((time.perf_counter() - started) * 1000)
                path.calls += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def start_fake(tmp: Path, delay_ms: float) -> tuple[subprocess.Popen[bytes], str, Path]:
    """The fake provider in its own process: the process, its URL and a gateway config for it
    (written under ``tmp``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp / "gateway.yaml"
    config.write_text(CONFIG.format(base=url))
    command = [sys.executable, __file__, "--serve-fake", str(port), "--delay-ms", str(delay_ms)]
    return subprocess.Popen(command), url, config


def start_gateway(
    name: str, tree: Path, config: Path, tmp: Path, workers: int, extra: dict[str, str]
) -> Path_:
    port = free_port()
    data = tmp / name
    data.mkdir()
    database_url = f"sqlite:///{data / 'bench.db'}"
    # OTLP/gRPC off: several gateways (and other collectors on the machine) would all want 4317
    env = {**os.environ, "BENCH_OPENAI_KEY": OPENAI_KEY, "LLMSCOPE_DATA_DIR": str(data),
           "LLMSCOPE_OTLP_GRPC_PORT": "0",
           "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'sdk' / 'src'}", **extra}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmscope", "serve", "--port", str(port), "--config", str(config),
         "--database-url", database_url, "--workers", str(workers)],
        cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Path_(name, url, "chat", {}, proc, database_url)


async def wait_ready(url: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="calls per path")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per path")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers of each gateway")
    parser.add_argument("--stream", action="store_true", help="streaming calls; latency = TTFT")
    parser.add_argument("--masking", action="store_true", help="add this tree with PII masking")
    parser.add_argument("--no-metrics", action="store_true", help="add this tree, metrics off")
    parser.add_argument(
        "--otlp-grpc", action="store_true",
        help="gateways keep their OTLP/gRPC receiver (each on a port of its own); default off",
    )  # fmt: skip
    parser.add_argument("--scenario", choices=("plain", "route", "tools"), default="plain")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="NAME=TREE",
        help="also measure the source tree TREE under NAME (repeatable)",
    )  # fmt: skip
    parser.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.delay_ms / 1000)
        return 0
    if args.requests < 100 or args.concurrency < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("--requests must be >= 100; --concurrency, --rounds, --workers >= 1")
    trees = {"this": REPO}
    for spec in args.compare:
        name, sep, tree = spec.partition("=")
        if not sep or not (Path(tree) / "llmscope" / "__init__.py").is_file():
            parser.error(f"--compare {spec}: expected NAME=TREE, TREE a llmscope source tree")
        trees[name] = Path(tree).resolve()
    try:
        import uvloop

        uvloop.install()  # the client's own CPU stays small next to what it measures
    except ImportError:
        pass

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fake, fake_url, config = start_fake(tmp, args.delay_ms)
        model = "split" if args.scenario == "route" else "chat"
        paths = [Path_("direct", f"{fake_url}/v1/chat/completions", "gpt-4o-mini",
                       {"Authorization": f"Bearer {OPENAI_KEY}"}, fake)]  # fmt: skip

        def grpc() -> dict[str, str]:
            return {"LLMSCOPE_OTLP_GRPC_PORT": str(free_port())} if args.otlp_grpc else {}

        for name, tree in trees.items():
            paths.append(start_gateway(name, tree, config, tmp, args.workers, grpc()))
        if args.masking:
            masked = {"LLMSCOPE_REDACT_PII": "true", **grpc()}
            paths.append(start_gateway("this+masking", REPO, config, tmp, args.workers, masked))
        if args.no_metrics:
            plain = {"LLMSCOPE_METRICS": "false", **grpc()}
            paths.append(start_gateway("this-metrics", REPO, config, tmp, args.workers, plain))
        for path in paths[1:]:
            path.model = model
        tools = args.scenario == "tools"
        try:
            for path in paths:
                health = path.url.replace("/v1/chat/completions", "/health")
                asyncio.run(wait_ready(health if path.proc is not fake else fake_url, path.proc))
            for path in paths:  # warm-up: connections, pools, caches
                asyncio.run(
                    run_load(path, 4 * args.concurrency, args.concurrency, args.stream, tools)
                )
                path.latencies.clear()
                path.calls = 0
            warmed = 4 * args.concurrency
            per_round = args.requests // args.rounds
            for _ in range(args.rounds):
                for path in paths:
                    assert path.proc is not None
                    cpu = tree_cpu_seconds(path.proc.pid)
                    started = time.perf_counter()
                    asyncio.run(run_load(path, per_round, args.concurrency, args.stream, tools))
                    path.seconds += time.perf_counter() - started
                    path.cpu += tree_cpu_seconds(path.proc.pid) - cpu
        finally:
            for path in paths:
                if path.proc is not None:
                    path.proc.terminate()
            for path in paths:
                if path.proc is not None:
                    path.proc.wait(60)
        load = os.getloadavg()[0]
        stored = {p.name: count_records(p.database_url) for p in paths if p.database_url}

    what = "time to first event (stream)" if args.stream else "whole call"
    print(
        f"{per_round * args.rounds} chat calls per path, {args.concurrency} in flight, "
        f"{args.rounds} alternating rounds, provider delay {args.delay_ms:g} ms, "
        f"{args.workers} worker(s) per gateway, scenario {args.scenario}; latency: {what}"
    )
    direct50 = percentile(paths[0].latencies, 50)
    header = ("path", "p50 ms", "p95 ms", "added p50", "CPU/call ms", "calls/s", "recorded")
    print("{:14} {:>9} {:>9} {:>10} {:>12} {:>9} {:>13}".format(*header))
    for path in paths:
        p50, p95 = percentile(path.latencies, 50), percentile(path.latencies, 95)
        added = "" if path.name == "direct" else f"{p50 - direct50:.2f}"
        rate = path.calls / path.seconds if path.seconds else 0.0
        cpu = path.cpu / path.calls * 1000 if path.calls else 0.0
        recorded = f"{stored[path.name]}/{path.calls + warmed}" if path.name in stored else ""
        print(f"{path.name:14} {p50:9.2f} {p95:9.2f} {added:>10} {cpu:12.3f} {rate:9.0f} "
              f"{recorded:>13}")  # fmt: skip
    print(f"load average after the run: {load:.2f} on {os.cpu_count()} CPUs")
    lost = [
        n for n, p in ((p.name, p) for p in paths) if n in stored and stored[n] != p.calls + warmed
    ]
    if lost:
        print(f"NOT every call recorded: {', '.join(lost)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
