"""The gateway at run time: the live config, its providers and limits, and one call's journey.

:class:`Gateway` loads the YAML (an invalid file raises ``ConfigError`` at start), owns the
pooled HTTP client every provider shares, and watches the file: a valid change swaps in a new
state (calls already under way finish on the state they started with, so none is dropped), an
invalid change is logged and the old state stays. :meth:`Gateway.invoke` serves one call and
hands its record to the recorder, off the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmscope.collector.gateway.config import ConfigError, GatewayConfig, load_config
from llmscope.collector.gateway.extension import BadRequest, CallMeta, apply_template, read_meta
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.limits import RateLimiter
from llmscope.collector.gateway.providers import Provider, ProviderError, make_provider
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.shapes import error_body, first_text, for_mlflow
from llmscope.collector.recorder import Recorder

log = logging.getLogger("llmscope.gateway")

RECORD_HEADER = "X-LLMScope-Record-Id"
KINDS = {
    "llm/v1/chat": "chat",
    "llm/v1/completions": "completions",
    "llm/v1/embeddings": "embeddings",
}


class GatewayError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class State:
    """One loaded config with its providers and limiters; replaced whole on reload."""

    config: GatewayConfig
    providers: dict[str, Provider]
    limiters: dict[str, RateLimiter]


class Gateway:
    """The live gateway for the YAML at ``path``; records go to ``recorder``."""

    def __init__(
        self, path: Path, recorder: Recorder, *, redact: bool = False, reload_interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.recorder = recorder
        self.redact = redact
        self.reload_interval = reload_interval
        self.config = load_config(self.path)  # ConfigError here stops the collector's start
        self._fingerprint = self._read_fingerprint()
        self.http: HttpPool | None = None
        self.state: State | None = None
        self._watcher: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.http = HttpPool()
        self.state = self._build(self.config, None)
        self._watcher = asyncio.create_task(self._watch(), name="llmscope-gateway-watch")
        names = ", ".join(e.name for e in self.config.endpoints)
        log.info("gateway started config=%s endpoints=[%s]", self.path, names)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    def _build(self, config: GatewayConfig, old: State | None) -> State:
        assert self.http is not None
        providers = {e.name: make_provider(e, self.http) for e in config.endpoints}
        limiters: dict[str, RateLimiter] = {}
        for endpoint in config.endpoints:
            if endpoint.limit is None:
                continue
            calls, period = endpoint.limit.calls, endpoint.limit.period_seconds
            kept = old.limiters.get(endpoint.name) if old else None
            same = kept is not None and (kept.calls, kept.period) == (calls, period)
            limiters[endpoint.name] = kept if same and kept else RateLimiter(calls, period)
        return State(config, providers, limiters)

    # --- hot reload -----------------------------------------------------------------------
    def _read_fingerprint(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                self.reload()
            except Exception:  # the watcher must outlive any surprise
                log.exception("gateway config watch failed")

    def reload(self) -> bool:
        """Apply the file if it changed and is valid; True when a new config took effect."""
        fingerprint = self._read_fingerprint()
        if fingerprint is None or fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            log.error("gateway config change ignored, keeping the running config: %s", exc)
            return False
        self.config = config
        self.state = self._build(config, self.state)
        names = ", ".join(e.name for e in config.endpoints)
        log.info("gateway config reloaded endpoints=[%s]", names)
        return True

    # --- one call -------------------------------------------------------------------------
    async def invoke(
        self, request: Request, name: str | None, kind: str | None, flavor: str
    ) -> Response:
        """Serve one call (``flavor`` is ``mlflow`` or ``openai``) and record it."""
        state = self.state
        assert state is not None
        call = Call(endpoint=name or "", kind=kind or "chat", body={}, meta=CallMeta())
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            call.fail("request body must be a JSON object")
            return self._finish(
                call, self._error(flavor, 400, "request body must be a JSON object")
            )
        call.body = body
        if name is None:
            model = body.get("model")
            name = model if isinstance(model, str) else ""
            call.endpoint = name
        endpoint = state.config.endpoint(name)
        try:
            if endpoint is None:
                raise GatewayError(404, f"no endpoint named {name!r} in the gateway config")
            expected = KINDS[endpoint.endpoint_type]
            call.kind = kind or expected
            call.provider, call.model = endpoint.model.provider, endpoint.model.name
            call.log_content = endpoint.log_content
            provider = state.providers[endpoint.name]
            call.offline = provider.offline
            if call.kind != expected:
                raise GatewayError(
                    400,
                    f"model: endpoint {name!r} is {endpoint.endpoint_type}, not llm/v1/{call.kind}",
                )
            call.meta = read_meta(body, request.headers)
            apply_template(call.meta, body, call.kind, state.config)
            limiter = state.limiters.get(endpoint.name)
            wait = limiter.acquire() if limiter else 0
            if wait:
                raise GatewayError(
                    429, f"rate limit of endpoint {name!r} exceeded", {"Retry-After": str(wait)}
                )
            if body.get("stream") and call.kind != "embeddings":
                return await self._stream(call, provider, flavor)
            answer = await getattr(provider, call.kind)(body)
            call.take_usage(answer.get("usage"))
            call.response = first_text(answer, call.kind)
            shaped = for_mlflow(answer, call.kind) if flavor == "mlflow" else answer
            response: Response = JSONResponse(shaped)
        except ProviderError as exc:
            call.fail(exc.message)
            response = self._provider_error(exc, flavor)
        except (GatewayError, BadRequest) as exc:
            status = exc.status if isinstance(exc, GatewayError) else 400
            call.fail(str(exc))
            headers = exc.headers if isinstance(exc, GatewayError) else None
            response = self._error(flavor, status, str(exc), headers)
        except Exception:
            log.exception("gateway call failed endpoint=%s", name)
            call.fail("internal gateway error")
            response = self._error(flavor, 500, "internal gateway error")
        return self._finish(call, response)

    async def _stream(self, call: Call, provider: Provider, flavor: str) -> Response:
        opener = provider.chat_stream if call.kind == "chat" else provider.completions_stream
        options = call.body.get("stream_options")
        wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunks = await opener(call.body)  # ProviderError here: answered as a plain error

        async def events() -> AsyncIterator[str]:
            parts: list[str] = []
            try:
                async for chunk in chunks:
                    if "error" in chunk and not chunk.get("choices"):
                        call.fail(ProviderError(502, chunk).message)
                        yield f"data: {json.dumps(chunk)}\n\n"
                        return
                    if chunk.get("usage"):
                        call.take_usage(chunk["usage"])
                    choices = chunk.get("choices") or []
                    for choice in choices:
                        if choice.get("index", 0) != 0:
                            continue
                        text = (choice.get("delta") or {}).get("content") or choice.get("text")
                        if text:
                            if call.ttft_ms is None:
                                call.ttft_ms = call.elapsed_ms()
                            parts.append(text)
                    if not choices and not wants_usage:
                        continue  # the usage chunk the gateway asked for, not the client
                    yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
                yield "data: [DONE]\n\n"
            except ProviderError as exc:
                call.fail(exc.message)
                yield f"data: {json.dumps(error_body(flavor, exc.status, exc.message))}\n\n"
            except (asyncio.CancelledError, GeneratorExit):
                call.fail("client disconnected during the stream")
                raise
            finally:
                call.response = "".join(parts)
                self._record(call)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={RECORD_HEADER: call.id, "Cache-Control": "no-cache"},
        )

    # --- answers and records --------------------------------------------------------------
    @staticmethod
    def _error(
        flavor: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        return JSONResponse(error_body(flavor, status, message), status, headers=headers)

    def _finish(self, call: Call, response: Response) -> Response:
        response.headers[RECORD_HEADER] = call.id
        self._record(call)
        return response

    @staticmethod
    def _provider_error(exc: ProviderError, flavor: str) -> Response:
        body = exc.body if flavor == "openai" else {"detail": exc.body, "message": exc.message}
        return JSONResponse(body, exc.status, headers=exc.headers)

    def _record(self, call: Call) -> None:
        try:
            self.recorder.submit(call.row(redact=self.redact))
        except Exception:  # recording trouble never fails the user's call
            log.exception("could not record gateway call id=%s", call.id)
        log.debug(
            "gateway call id=%s endpoint=%s status=%s tokens=%s/%s",
            call.id,
            call.endpoint,
            call.status,
            call.input_tokens,
            call.output_tokens,
        )
