"""Where a gateway call's CPU goes: py-spy samples of a real ``llmscope serve`` under load.

The same fake provider and gateway as ``gateway_overhead.py`` (SQLite store, metrics and cost
on); ``--concurrency`` chat calls in flight for ``--seconds`` while py-spy samples the gateway
process (only stacks that are running, every thread). Each sample is put in one step of the
call, by the innermost frame that names one (``STEPS``), and the script prints each step's share
of the samples and its CPU per call (the share of the process's CPU per call over the run)::

    pip install py-spy
    python benchmarks/gateway_profile.py --concurrency 20 --seconds 20 [--tree /tmp/main]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import tree_cpu_seconds  # the sibling benchmarks module
from gateway_overhead import REPO, run_load, start_fake, start_gateway, wait_ready

# (step, what a frame's "function (file:line)" text must contain), innermost match wins.
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("record: masking", ("redaction.py", "masking.py", "rows.py")),
    ("record: pricing", ("pricing.py", "accounting.py:price", "price (")),
    ("record: metrics", ("metrics.py", "prometheus_client", "accounting.py", "budgets.py")),
    ("record: journal", ("_Journal", "recorder.py:append", "append (", "_to_json", "submit (")),
    ("record: database write", ("_insert", "insert_records", "sqlalchemy", "sqlite3", "_write (")),
    ("record: recorder queue", ("_take_batch", "queue.py", "recorder.py")),
    ("record: build the row", ("recording.py", "media.py", "ingest/writer.py")),
    ("provider call", ("aiohttp", "providers/", "yarl", "multidict")),
    ("re-serialisation", ("render (", "JSONResponse", "shapes.py", "responses.py:", "relay")),
    (
        "parsing and validation",
        (
            "body.py",
            "extension.py",
            "validation.py",
            "choices.py",
            "encodable.py",
            "json/decoder",
            "orjson",
        ),
    ),  # fmt: skip
    ("the gateway's own logic", ("service.py", "fast.py", "routes.py", "limits.py")),
    ("headers, admission, keys", ("admission.py", "auth.py", "api/limits.py", "datastructures")),
    ("HTTP server and routing", ("uvicorn", "starlette", "fastapi", "httptools", "h11")),
    ("event loop", ("asyncio", "uvloop", "selectors", "threading")),
]


def step_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for step, needles in STEPS:
            if any(n in frame for n in needles):
                return step
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers (all sampled)")
    parser.add_argument("--tree", type=Path, default=REPO, help="the source tree to profile")
    parser.add_argument("--masking", action="store_true", help="with LLMSCOPE_REDACT_PII=true")
    parser.add_argument("--stacks", type=Path, help="keep py-spy's raw stacks in this file")
    parser.add_argument("--detail", type=int, default=0, help="print the N commonest leaves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fake, fake_url, config = start_fake(tmp, args.delay_ms)
        extra = {"LLMSCOPE_REDACT_PII": "true"} if args.masking else {}
        gateway = start_gateway("profiled", args.tree.resolve(), config, tmp, args.workers, extra)
        assert gateway.proc is not None
        raw = args.stacks or tmp / "stacks.txt"
        try:
            asyncio.run(wait_ready(fake_url, fake))
            asyncio.run(wait_ready(gateway.url.replace("/v1/chat/completions", "/health"),
                                   gateway.proc))  # fmt: skip
            asyncio.run(run_load(gateway, 8 * args.concurrency, args.concurrency, False, False))
            gateway.calls = 0
            spy = subprocess.Popen(
                ["py-spy", "record", "--format", "raw", "--output", str(raw), "--gil",
                 "--rate", str(args.rate), "--duration", str(int(args.seconds)),
                 "--pid", str(gateway.proc.pid), "--subprocesses"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
            cpu = tree_cpu_seconds(gateway.proc.pid)
            deadline = time.monotonic() + args.seconds - 2
            while time.monotonic() < deadline:
                asyncio.run(
                    run_load(gateway, 20 * args.concurrency, args.concurrency, False, False)
                )
            cpu = tree_cpu_seconds(gateway.proc.pid) - cpu
            calls = gateway.calls
            spy.wait(args.seconds + 60)
            samples: Counter[str] = Counter()
            leaves: Counter[str] = Counter()
            for line in raw.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    samples[step_of(stack)] += int(count)
                    leaves[f"{step_of(stack)}: " + ";".join(stack.split(";")[-3:])] += int(count)
        finally:
            gateway.proc.terminate()
            gateway.proc.wait(60)
            fake.terminate()
            fake.wait(60)
    total = sum(samples.values()) or 1
    per_call = cpu / calls * 1000
    print(f"{calls} calls at {args.concurrency} in flight, {args.workers} worker(s), "
          f"provider delay {args.delay_ms:g} ms, tree {args.tree}, "
          f"masking {'on' if args.masking else 'off'}")  # fmt: skip
    print(f"gateway CPU per call: {per_call:.3f} ms; {total} samples")
    print(f"{'step':28} {'share':>7} {'ms/call':>8}")
    for step, count in samples.most_common():
        print(f"{step:28} {count / total:7.1%} {count / total * per_call:8.3f}")
    for leaf, count in leaves.most_common(args.detail):
        print(f"{count:6d} {leaf}")
    print(f"load average after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
