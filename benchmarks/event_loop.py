"""Event-loop stalls: ``/health`` and gateway-call latency while a hostile text is worked on.

A real ``llmscope serve --config`` (SQLite store, ``LLMSCOPE_REDACT_PII=true``, a ``regex``
evaluator with the backtracking pattern ``^(\\w+\\s?)*$``) in front of the fake OpenAI provider
(its own process, answering at once with an echo of the prompt) is probed from here: one
``GET /health`` and one small chat call after another, for ``--seconds`` per scenario. The
scenarios, in one run:

- ``baseline``: nothing else going on (the reference for the machine's own noise);
- ``masking 40 KB`` / ``masking 1 MB``: a client sends gateway calls whose prompt is ``a-a-a-...``
  of that size, one after another (the quadratic e-mail expression took ~5 s for 40 KB);
- ``regex``: a client ingests records over REST whose answer is ``a`` * 30 + ``!`` (2^30 steps
  for a backtracking engine), which the online judge checks against the pattern;
- ``1 MB, no masking``: the 1 MB calls to a second collector with masking off, the reference
  for what a 1 MB call costs the collector whatever it holds.

Target: ``/health`` and gateway calls answer within 50 ms while either attack runs. Printed:
p50, p95 and worst latency per scenario and probe, with the load average; ``--out`` also writes
them as a result page (default ``benchmarks/results/event_loop.md``, its table included by
``docs/benchmarks/event-loop.md``).

    python benchmarks/event_loop.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import collector, free_port, fresh_database  # the sibling benchmarks module

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.collector.gateway.fake_provider import OPENAI_KEY  # noqa: E402

TARGET_MS = 50.0
HERE = Path(__file__).resolve().parent
CONFIG = """
endpoints:
  - name: demo
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: $BENCH_OPENAI_KEY, openai_api_base: "{fake}/v1"}}
evaluators:
  - {{name: words, type: regex, pattern: '^(\\w+\\s?)*$', must_match: true}}
"""


@contextmanager
def fake_provider() -> Iterator[str]:
    """The fake OpenAI provider in its own process (``gateway_overhead.py --serve-fake``)."""
    port = free_port()
    command = [sys.executable, str(HERE / "gateway_overhead.py"), "--serve-fake", str(port),
               "--delay-ms", "0"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the fake provider did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def chat(text: str) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": text}]}


def masking(size: int) -> Callable[[httpx.Client], None]:
    text = ("a-" * (size // 2 + 1))[:size]

    def send(client: httpx.Client) -> None:
        answer = client.post("/v1/chat/completions", json=chat(text))
        assert answer.status_code == 200, answer.text[:200]

    return send


def regex_bait() -> Callable[[httpx.Client], None]:
    count = iter(range(10**9))

    def send(client: httpx.Client) -> None:
        record = {"endpoint": "bait", "prompt": "q", "response": "a" * 30 + "!"}
        answer = client.post("/api/v1/records", json={"records": [record] * 20})
        assert answer.status_code == 201, answer.text[:200]
        next(count)
        time.sleep(0.2)  # a steady stream of records for the judge to check

    return send


def measure(base: str, seconds: float, attack: Callable[[httpx.Client], None] | None) -> dict:
    """Latencies (ms) of the probes over ``seconds``, with ``attack`` repeated meanwhile."""
    stop = threading.Event()
    attacks = 0

    def attacker() -> None:
        nonlocal attacks
        with httpx.Client(base_url=base, timeout=600) as client:
            while not stop.is_set():
                assert attack is not None
                attack(client)
                attacks += 1

    thread = threading.Thread(target=attacker, daemon=True) if attack else None
    latencies: dict[str, list[float]] = {"health": [], "gateway": []}
    with httpx.Client(base_url=base, timeout=60) as client:
        client.get("/health")
        if thread is not None:
            thread.start()
            time.sleep(0.5)  # the attack is under way
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, send in (
                ("health", lambda: client.get("/health")),
                ("gateway", lambda: client.post("/v1/chat/completions", json=chat("hello"))),
            ):
                started = time.perf_counter()
                assert send().status_code == 200
                latencies[name].append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
    stop.set()
    if thread is not None:
        thread.join(600)
    out: dict[str, Any] = {"attacks": attacks}
    for name, values in latencies.items():
        values.sort()
        out[name] = {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(values[int(len(values) * 0.95)], 1),
            "max_ms": round(values[-1], 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "event_loop.md",
    )
    args = parser.parse_args()
    scenarios: list[tuple[str, Callable[[httpx.Client], None] | None]] = [
        ("baseline", None),
        ("masking 40 KB", masking(40 * 1024)),
        ("masking 1 MB", masking(1024 * 1024)),
        ("regex", regex_bait()),
    ]
    results: dict[str, Any] = {}
    os.environ["BENCH_OPENAI_KEY"] = OPENAI_KEY
    with tempfile.TemporaryDirectory() as tmp, fake_provider() as fake:
        workdir = Path(tmp)
        config = workdir / "gateway.yaml"
        config.write_text(CONFIG.format(fake=fake))
        for pii, runs in (("true", scenarios), ("false", [("1 MB, no masking", masking(1 << 20))])):
            url, cleanup = fresh_database("sqlite", None, workdir)
            env = {"LLMSCOPE_REDACT_PII": pii}
            data = workdir / f"data-{pii}"
            try:
                with collector(url, config=config, data_dir=data, env=env) as (base, _):
                    for name, attack in runs:
                        results[name] = measure(base, args.seconds, attack)
                        print(f"{name:16} {summary(results[name])}", flush=True)
            finally:
                cleanup()
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"target: /health and gateway calls within {TARGET_MS:.0f} ms during an attack")
    print(f"load average after the run: {' '.join(map(str, load))} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(result_page(results, args.seconds, load))
    print(f"written: {args.out}")


def result_page(results: dict[str, Any], seconds: float, load: list[float]) -> str:
    rows = []
    for name, result in results.items():
        cells = [name, str(result["attacks"]) if name != "baseline" else ""]
        for probe in ("health", "gateway"):
            r = result[probe]
            worst = f"**{r['max_ms']:.1f}**" if name != "baseline" else f"{r['max_ms']:.1f}"
            cells.append(f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {worst}")
        rows.append("| " + " | ".join(cells) + " |")
    return f"""# Event-loop stalls: results

Script: `benchmarks/event_loop.py` (SQLite, `LLMSCOPE_REDACT_PII=true`, the fake OpenAI
provider in its own process, a `regex` evaluator with `^(\\w+\\s?)*$`; the last row: a
second collector with masking off). {seconds:g} s of probing per scenario. Machine: the
project's {os.cpu_count()}-core machine, load average {" / ".join(f"{x:.1f}" for x in load)} (1 /
5 / 15 min) at the end of the run.

```bash
python benchmarks/event_loop.py --seconds {seconds:g}
```

<!-- --8<-- [start:table] -->
| scenario | attacks sent | `/health` p50 / p95 / worst (ms) | gateway call p50 / p95 / worst (ms) |
|---|---|---|---|
{chr(10).join(rows)}

Target: within {TARGET_MS:.0f} ms while an attack runs; `baseline` is the same probes with
nothing else going on, in the same run.
<!-- --8<-- [end:table] -->
"""


def summary(result: dict[str, Any]) -> str:
    parts = [f"attacks {result['attacks']:>4}"]
    for name in ("health", "gateway"):
        r = result[name]
        parts.append(
            f"{name} p50 {r['p50_ms']:6.1f} p95 {r['p95_ms']:6.1f} max {r['max_ms']:7.1f} ms"
        )
    return " | ".join(parts)


if __name__ == "__main__":
    main()
