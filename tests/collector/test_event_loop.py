"""A hostile text never stalls the collector: ``/health`` and gateway calls answer while it is
masked (``LLMSCOPE_REDACT_PII``) or matched by a ``regex`` evaluator.

A real ``llmscope serve`` process (its gateway in front of the fake OpenAI provider) is
probed from here while the attack runs. The bound is loose (0.5 s) so it holds on a loaded CI
machine; the stalls it catches lasted seconds (masking 100 KB of ``a-a-...`` with the
quadratic e-mail expression, a backtracking pattern on a 31-character answer). The 50 ms
target is shown by ``benchmarks/event_loop.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from llmscope.config import Settings
from tests.collector.gateway.fake_provider import OPENAI_KEY, FakeProvider, ServerThread
from tests.conftest import cli_server, free_port

BOUND_S = 0.5
CONFIG = """
endpoints:
  - name: demo
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: {key}, openai_api_base: "{fake}/v1"}}
"""
BACKTRACKING = "  - {name: words, type: regex, pattern: '^(\\w+\\s?)*$', must_match: true}\n"


@contextmanager
def collector(
    settings: Settings, tmp_path: Path, evaluators: str = "", **env: str
) -> Iterator[str]:
    """``llmscope serve`` with a gateway in front of the fake provider (served from here)."""
    server = ServerThread(FakeProvider().app, free_port()).start()
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(key=OPENAI_KEY, fake=server.url) + evaluators)
    args = ["serve", "--database-url", settings.database_url, "--config", str(path)]
    try:
        with cli_server(args, env={"LLMSCOPE_DATA_DIR": str(settings.data_dir), **env}) as base:
            yield base
    finally:
        server.stop()


def chat(text: str) -> dict[str, object]:
    return {"model": "demo", "messages": [{"role": "user", "content": text}]}


def worst_latencies(base: str, attack: Callable[[], None], seconds: float) -> dict[str, float]:
    """Worst ``/health`` and gateway-call latency (s) while ``attack`` runs in a thread, over at
    least ``seconds`` and until it ends (a request that times out counts as its timeout)."""
    thread = threading.Thread(target=attack, daemon=True)
    worst = {"health": 0.0, "gateway": 0.0}
    with httpx.Client(base_url=base, timeout=5) as client:
        # warm up first: the first call opens the connections (client, provider, store)
        assert client.post("/v1/chat/completions", json=chat("hello")).status_code == 200
        thread.start()
        started = time.monotonic()
        while thread.is_alive() or time.monotonic() - started < seconds:
            if time.monotonic() - started > 60:
                break  # a collector stalled for good: the bound has long failed
            for name, send in (
                ("health", lambda: client.get("/health")),
                ("gateway", lambda: client.post("/v1/chat/completions", json=chat("hello"))),
            ):
                t = time.perf_counter()
                try:
                    assert send().status_code == 200
                    took = time.perf_counter() - t
                except httpx.TimeoutException:
                    took = 5.0
                worst[name] = max(worst[name], took)
            time.sleep(0.02)
    return worst


def test_masking_a_hostile_prompt_does_not_stall_the_collector(
    settings: Settings, tmp_path: Path
) -> None:
    hostile = [("a-" * 50_000), ("a-" * 512 * 1024), ("x@" + "a." * 200_000)]
    answers: list[httpx.Response] = []

    def attack() -> None:
        with httpx.Client(base_url=base, timeout=300) as client:
            for text in hostile:
                answers.append(client.post("/v1/chat/completions", json=chat(text)))

    with collector(settings, tmp_path, LLMSCOPE_REDACT_PII="true") as base:
        worst = worst_latencies(base, attack, seconds=2)
        assert [a.status_code for a in answers] == [200] * len(hostile)
        assert worst["health"] < BOUND_S, worst
        assert worst["gateway"] < BOUND_S, worst
        # the hostile calls were masked and recorded like any other
        for answer in answers:
            record_id = answer.headers["X-LLMScope-Record-Id"]
            stored = httpx.get(f"{base}/api/v1/records/{record_id}", timeout=10)
            assert stored.status_code == 200, stored.text


def test_a_backtracking_regex_evaluator_does_not_stall_the_collector(
    settings: Settings, tmp_path: Path
) -> None:
    answer = "a" * 30 + "!"  # Python's re: 2^30 steps to say it does not match
    ids: list[str] = []

    def attack() -> None:
        record = {"id": "hostile", "endpoint": "x", "prompt": "q", "response": answer}
        reply = httpx.post(f"{base}/api/v1/records", json=record, timeout=10)
        ids.extend(reply.json()["ids"])

    with collector(settings, tmp_path, "evaluators:\n" + BACKTRACKING) as base:
        # the online judge reads records 2 s after they arrive: probe well past that
        worst = worst_latencies(base, attack, seconds=6)
        assert ids == ["hostile"]
        assert worst["health"] < BOUND_S, worst
        assert worst["gateway"] < BOUND_S, worst
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            record = httpx.get(f"{base}/api/v1/records/hostile", timeout=10).json()
            verdicts = [e for e in record.get("evaluations") or [] if e["evaluator"] == "words"]
            if verdicts:
                break
            time.sleep(0.2)
        assert [v["passed"] for v in verdicts] == [False]  # judged, and correctly
