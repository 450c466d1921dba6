"""Running the demo's collector and replaying the traffic plan through its gateway.

:func:`start_collector` writes the gateway YAML (two offline endpoints, the app's prompt
templates) and starts a real ``llmscope serve`` child process on a free loopback port.
:func:`replay` sends every planned call with the official ``openai`` client, exactly as an app
would (``base_url=<collector>/v1``, ``model`` = endpoint name, the ``llmscope`` body extension
for template, user, session, tags and the historical timestamp), then posts the users' thumbs
up/down to the feedback API by the ``X-LLMScope-Record-Id`` each answer carried.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from llmscope.app.demo.plan import ENDPOINTS, TEMPLATES, PlannedCall

FEEDBACK_RETRIES = 3  # as the openai client's max_retries for the calls

__all__ = ["Collector", "gateway_config", "replay", "start_collector"]

Progress = Callable[[int, int], None]


# What the outdated refund policy says (plan.py's refund-policy@3) and today's never does.
OUTDATED_POLICY = r"within 14 days|return fee|as store credit"


def gateway_config() -> dict[str, Any]:
    """The demo's gateway YAML as data: offline endpoints, the registered templates, and an
    evaluator for experiments ("Try a fix"): a regex check that fails an answer quoting the
    outdated refund policy (the offline provider quotes its system prompt's policy). It judges
    no live traffic (``sample_rate: 0``), so the demo's story stays the users' thumbs-down; an
    experiment judges the original and the candidate answers with it."""
    return {
        "endpoints": [
            {
                "name": name,
                "endpoint_type": "llm/v1/chat",
                "model": {"provider": "offline", "name": model, "config": {"latency_ms": ms}},
            }
            for name, (model, ms) in ENDPOINTS.items()
        ],
        "prompts": [
            {"name": name, "version": version, "text": text}
            for (name, version), text in TEMPLATES.items()
        ],
        "evaluators": [
            {
                "name": "current-refund-policy",
                "type": "regex",
                "pattern": OUTDATED_POLICY,
                "must_match": False,
                "sample_rate": 0,
            }
        ],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Collector:
    """A running ``llmscope serve`` child process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_collector(
    database_url: str, workdir: Path, *, port: int | None = None, timeout: float = 90.0
) -> Collector:
    """Start the collector with the demo gateway on loopback; returns once /health answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway_config(), sort_keys=False), encoding="utf-8")
    port = port or _free_port()
    log_path = workdir / "collector.log"
    # The demo's spool lives in its own data dir, so it can never replay into another store.
    env = {**os.environ, "LLMSCOPE_DATA_DIR": str(workdir)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmscope", "serve", "--host", "127.0.0.1"]
            + ["--port", str(port), "--config", str(config), "--database-url", database_url]
            # The demo sends no traces: a tracing backend already on 4317 must not stop it.
            + ["--otlp-grpc-port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    collector = Collector(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"the collector exited: {' '.join(tail) or process.returncode}")
        try:
            if httpx.get(f"{collector.url}/health", timeout=2).status_code == 200:
                return collector
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    collector.stop()
    raise RuntimeError(f"the collector did not answer within {timeout:.0f}s (see {log_path})")


def _extension(call: PlannedCall) -> dict[str, Any]:
    return {
        "template": call.template,
        "version": call.version,
        "variables": {"question": call.question},
        "user_id": call.user_id,
        "session_id": call.session_id,
        "tags": {"channel": call.channel, "app": "larkspur-support"},
        "timestamp": call.timestamp.isoformat(),
    }


async def _call(client: openai.AsyncOpenAI, call: PlannedCall) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model=call.endpoint,
        messages=[
            {"role": "system", "content": call.system_prompt},
            {"role": "user", "content": call.question},
        ],
        extra_body={"llmscope": _extension(call)},
    )
    raw.parse()  # the app reads the answer; a malformed one would raise here
    return raw.headers["x-llmscope-record-id"]


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST, retried on a dropped connection as the openai client retries the calls
    (``max_retries``): on a loaded machine the server may close a kept-alive connection just as
    it is reused. A rating sent twice is harmless: the newest event of a record counts."""
    for attempt in range(FEEDBACK_RETRIES):
        try:
            return await http.post(path, json=body)
        except httpx.TransportError:
            await asyncio.sleep(0.5 * 2**attempt)
    return await http.post(path, json=body)


async def _feedback(http: httpx.AsyncClient, record_id: str, call: PlannedCall) -> None:
    assert call.feedback is not None
    body = {
        "value": call.feedback.value,
        "tags": list(call.feedback.tags),
        "comment": call.feedback.comment,
        "source": "user",
    }
    # The gateway stores records off the request path: a rating that follows its answer
    # within milliseconds may find the record not yet written, so it waits a little.
    for _ in range(100):
        response = await _post(http, f"/api/v1/records/{record_id}/feedback", body)
        if response.status_code != 404:
            response.raise_for_status()
            return
        await asyncio.sleep(0.1)
    response.raise_for_status()


async def _replay(
    base_url: str, calls: list[PlannedCall], concurrency: int, progress: Progress
) -> list[str]:
    ids: list[str] = [""] * len(calls)
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(calls)):
        queue.put_nowait(index)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        openai.AsyncOpenAI(
            base_url=f"{base_url}/v1",
            api_key="demo",  # the gateway holds the provider config; no key is checked
            max_retries=3,
            timeout=60,
        ) as client,
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http,
    ):

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                index = queue.get_nowait()
                call = calls[index]
                ids[index] = await _call(client, call)
                if call.feedback is not None:
                    await _feedback(http, ids[index], call)
                done += 1
                progress(done, len(calls))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


def replay(
    base_url: str, calls: list[PlannedCall], *, concurrency: int = 64, progress: Progress
) -> list[str]:
    """Send every call (and its feedback) through the gateway; the record ids, in plan order."""
    return asyncio.run(_replay(base_url, calls, concurrency, progress))
