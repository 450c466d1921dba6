"""Real HTTP servers on 127.0.0.1 for tests: an OpenAI-compatible LLM and a webhook receiver.

The fake LLM speaks the real chat-completions wire format (the one stand-in the project allows
for an LLM); what it answers is scripted per request, so tests can serve good JSON, prose,
incomplete objects, or nothing in time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A behaviour turns the request body into the assistant's text, or sleeps first.
Behaviour = Callable[[dict[str, Any]], str]


def good(body: dict[str, Any]) -> str:
    """A valid summary naming the cluster the prompt is about."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    match = re.search(r"Cluster (\d+) \(", user)
    cid = match.group(1) if match else "?"
    return json.dumps(
        {
            "title": f"Refund questions {cid}",
            "summary": f"Users of cluster {cid} ask about refunds; answers cite an old policy.",
            "root_cause": "The template still contains the 2025 refund policy.",
            "suggested_fix": "Update the refund section of the support template to v3.",
        }
    )


def prose(_body: dict[str, Any]) -> str:
    return "Sure! This cluster is about refunds, and the answers look wrong."


def missing_keys(_body: dict[str, Any]) -> str:
    return json.dumps({"title": "Refunds", "summary": "About refunds."})


def slow(seconds: float) -> Behaviour:
    def behaviour(body: dict[str, Any]) -> str:
        time.sleep(seconds)
        return good(body)

    return behaviour


@dataclass
class FakeLLM:
    url: str  # the OpenAI base URL, ending in /v1
    script: list[Behaviour]
    default: Behaviour
    requests: list[dict[str, Any]] = field(default_factory=list)  # headers (lower-case), body


@contextmanager
def fake_llm(script: list[Behaviour] | None = None, default: Behaviour = good) -> Iterator[FakeLLM]:
    state = FakeLLM(url="", script=list(script or []), default=default)
    lock = threading.Lock()

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            with lock:
                state.requests.append(
                    {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
                behaviour = state.script.pop(0) if state.script else state.default
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_error(404)
                return
            content = behaviour(body)
            answer = {
                "id": f"chatcmpl-{len(state.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 300, "completion_tokens": 80, "total_tokens": 380},
            }
            raw = json.dumps(answer).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    with _serving(Handler) as base:
        state.url = f"{base}/v1"
        yield state


@dataclass
class Receiver:
    url: str
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by path
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> 503s before success
    hits: dict[str, int] = field(default_factory=dict)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """Collects JSON POSTs by path; ``fail_first[path] = n`` answers the first n with 503."""
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            with lock:
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
                failing = state.fail_first.get(self.path, 0) >= state.hits[self.path]
                if not failing:
                    state.received.setdefault(self.path, []).append(body)
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with _serving(Handler) as base:
        state.url = base
        yield state


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass  # the test output is for the test

    def read_json(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
