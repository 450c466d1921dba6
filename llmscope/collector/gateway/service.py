"""The gateway at run time: the live config, its providers and limits, and one call's journey.

:class:`Gateway` loads the YAML (an invalid file raises ``ConfigError`` at start), owns the
pooled HTTP client every provider shares, and watches the file: a valid change swaps in a new
state (calls already under way finish on the state they started with, so none is dropped), an
invalid change is logged and the old state stays. :meth:`Gateway.invoke` serves one call and
hands its record to the write path (``RecordWriter.submit``), off the request path. With PII
masking on, the record is finished in a worker thread (masking a long prompt is CPU work the
event loop must not wait for); a plain call's answer still leaves only once its record is
journaled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.responses import Response

from llmscope.collector.gateway.body import (
    BodyRefused,
    CallRequest,
    json_answer,
    read_body,
    relayed_answer,
)
from llmscope.collector.gateway.choices import answer_choices, offered_tools
from llmscope.collector.gateway.config import (
    ConfigError,
    Endpoint,
    GatewayConfig,
    Route,
    load_config,
)
from llmscope.collector.gateway.extension import BadRequest, CallMeta, apply_template, read_meta
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.limits import RateLimiter
from llmscope.collector.gateway.providers import Provider, ProviderError, make_provider
from llmscope.collector.gateway.providers.base import RelayedAnswer
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.responses import (
    NotTranslatable,
    from_chat,
    response_choices,
    response_usage,
    to_chat,
)
from llmscope.collector.gateway.shapes import RECORD_HEADER, error_body, for_mlflow
from llmscope.collector.gateway.streaming import (
    stream_chat,
    stream_native_responses,
    stream_responses,
)
from llmscope.collector.gateway.validation import InvalidRequest, check_mlflow_request
from llmscope.collector.ingest import RecordWriter

log = logging.getLogger("llmscope.gateway")

KINDS = {
    "llm/v1/chat": "chat",
    "llm/v1/completions": "completions",
    "llm/v1/embeddings": "embeddings",
}


_RECORD_HEADER = RECORD_HEADER.lower().encode()
FALLBACK_STATUSES = frozenset({408, 429})  # and every 5xx (504 is a provider timeout)


def worth_another(status: int) -> bool:
    """Whether a route should try its next endpoint after this failure."""
    return status in FALLBACK_STATUSES or status >= 500


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
    """The live gateway for the YAML at ``path``; records leave through ``writer``."""

    def __init__(self, path: Path, writer: RecordWriter, *, reload_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.writer = writer
        self.reload_interval = reload_interval
        self.accounting = writer.accounting  # pricing and budgets from this config
        self.config = load_config(self.path)  # ConfigError here stops the collector's start
        self._configure_accounting(self.config)
        self._fingerprint = self._read_fingerprint()
        self.http: HttpPool | None = None
        self.state: State | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.loaded_at = int(time.time())  # "created" of /v1/models: when the config loaded
        self.rng = random.Random()  # draws a route's destination; tests seed it
        # Finishes records when masking is on; two threads, so one huge prompt does not hold
        # up the records of the calls after it.
        self._finishing = ThreadPoolExecutor(2, thread_name_prefix="llmscope-record")

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
        # records being finished are journaled before the recorder stops
        await asyncio.to_thread(self._finishing.shutdown, wait=True)

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

    def _configure_accounting(self, config: GatewayConfig) -> None:
        if self.accounting is not None:
            self.accounting.configure(config.pricing, config.budgets)

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
        self.loaded_at = int(time.time())
        self.state = self._build(config, self.state)
        self._configure_accounting(config)
        names = ", ".join(e.name for e in config.endpoints)
        log.info("gateway config reloaded endpoints=[%s]", names)
        return True

    # --- one call -------------------------------------------------------------------------
    def targets(self, name: str) -> tuple[Route | None, list[Endpoint]]:
        """The endpoints a call to ``name`` tries, in order: an endpoint alone, or a route's
        destination drawn by weight followed by its fallbacks."""
        state = self.state
        assert state is not None
        route = state.config.route(name)
        if route is None:
            endpoint = state.config.endpoint(name)
            return None, [endpoint] if endpoint is not None else []
        weights = [d.traffic_percentage for d in route.destinations]
        chosen = self.rng.choices(route.destinations, weights=weights)[0].name
        order = [chosen] + [f for f in route.fallbacks if f != chosen]
        endpoints = [state.config.endpoint(n) for n in order]
        return route, [e for e in endpoints if e is not None]

    async def invoke(
        self, request: CallRequest, name: str | None, kind: str | None, flavor: str
    ) -> Response:
        """Serve one call (``flavor``: ``mlflow``, ``openai`` or ``responses``) and record it."""
        state = self.state
        assert state is not None
        call = Call(endpoint=name or "", kind=kind or "chat", body={}, meta=CallMeta())
        try:
            body = await read_body(request)
        except BodyRefused as exc:
            call.fail(str(exc))
            return await self._finish(call, self._error(flavor, exc.status, str(exc)))
        call.body = body
        if name is None:
            model = body.get("model")
            name = model if isinstance(model, str) else ""
            call.endpoint = name
        original = body
        try:
            route, endpoints = self.targets(name)
            if not endpoints:
                raise GatewayError(
                    404, f"no endpoint named {name!r} in the gateway config (nor a route)"
                )
            call.route = route.name if route else None
            endpoint_type = route.task_type if route else endpoints[0].endpoint_type
            expected = KINDS[endpoint_type]
            call.kind = kind or expected
            if call.kind != expected:
                raise GatewayError(
                    400,
                    f"model: {'route' if route else 'endpoint'} {name!r} is {endpoint_type}, "
                    f"not llm/v1/{call.kind}",
                )
            call.meta = read_meta(body, request.headers)
            if flavor == "responses":
                try:
                    call.body = body = to_chat(body)
                except NotTranslatable as exc:
                    raise BadRequest(str(exc)) from None
            apply_template(call.meta, body, call.kind, state.config)
            if flavor == "mlflow":
                check_mlflow_request(body, call.kind)  # 422 before anyone is called, as MLflow
            if call.kind == "chat":
                call.tools = offered_tools(body)
            for position, endpoint in enumerate(endpoints):
                last = position == len(endpoints) - 1
                try:
                    return await self._attempt(call, endpoint, state, flavor, original)
                except (ProviderError, GatewayError) as exc:
                    if last or not worth_another(exc.status):
                        raise
                    log.info(
                        "gateway route=%s endpoint=%s failed status=%s, falling back",
                        call.route,
                        endpoint.name,
                        exc.status,
                    )
            raise AssertionError("unreachable")  # the last attempt returned or raised
        except ProviderError as exc:
            call.fail(exc.message)
            response = self._provider_error(exc, flavor)
        except InvalidRequest as exc:
            call.fail(str(exc))
            response = json_answer({"detail": exc.errors, "message": str(exc)}, 422)
        except (GatewayError, BadRequest) as exc:
            status = exc.status if isinstance(exc, GatewayError) else 400
            call.fail(str(exc))
            headers = exc.headers if isinstance(exc, GatewayError) else None
            response = self._error(flavor, status, str(exc), headers)
        except Exception:
            log.exception("gateway call failed endpoint=%s", name)
            call.fail("internal gateway error")
            response = self._error(flavor, 500, "internal gateway error")
        return await self._finish(call, response)

    async def _attempt(
        self,
        call: Call,
        endpoint: Endpoint,
        state: State,
        flavor: str,
        original: dict[str, Any],
    ) -> Response:
        """One endpoint's try at the call; raises ProviderError/GatewayError for a fallback."""
        call.endpoint = endpoint.name
        call.provider, call.model = endpoint.model.provider, endpoint.model.name
        call.log_content = endpoint.log_content
        call.log_media = endpoint.log_media
        provider = state.providers[endpoint.name]
        call.offline = provider.offline
        self._check_budget(call)
        limiter = state.limiters.get(endpoint.name)
        wait = limiter.acquire() if limiter else 0
        if wait:
            if self.accounting is not None:
                self.accounting.metrics.refused("rate_limit")
            raise GatewayError(
                429,
                f"rate limit of endpoint {endpoint.name!r} exceeded",
                {"Retry-After": str(wait)},
            )
        native = flavor == "responses" and provider.has_responses
        if native:
            request = {k: v for k, v in original.items() if k != "llmscope"}
            if request.get("stream"):
                return await stream_native_responses(self, call, provider, request)
            answer = await provider.responses(request)
            call.take_id(answer)
            call.take_usage(response_usage(answer))
            call.take_choices(response_choices(answer))
            return await self._finish(call, json_answer(answer))
        if call.body.get("stream") and call.kind != "embeddings":
            if flavor == "responses":
                return await stream_responses(self, call, provider, original)
            return await stream_chat(self, call, provider, flavor)
        answer = await getattr(provider, call.kind)(call.body)
        call.take_id(answer)
        call.take_usage(answer.get("usage"))
        call.take_choices(answer_choices(answer, call.kind))
        if flavor == "responses":
            shaped = from_chat(answer, original, answer.get("model") or call.model or "")
        elif flavor == "mlflow":
            shaped = for_mlflow(answer, call.kind, call.provider)
        elif isinstance(answer, RelayedAnswer) and answer.raw is not None:
            return await self._finish(call, relayed_answer(answer.raw))  # unchanged: as sent
        else:
            shaped = answer
        return await self._finish(call, json_answer(shaped))

    # --- answers and records --------------------------------------------------------------
    @staticmethod
    def _error(
        flavor: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        return json_answer(error_body(flavor, status, message), status, headers)

    async def _finish(self, call: Call, response: Response) -> Response:
        response.raw_headers.append((_RECORD_HEADER, call.id.encode()))  # set nowhere else
        finishing = self._record(call)
        if finishing is not None:
            await finishing  # journaled before the answer leaves, as without masking
        return response

    @staticmethod
    def _provider_error(exc: ProviderError, flavor: str) -> Response:
        body = exc.body if flavor != "mlflow" else {"detail": exc.body, "message": exc.message}
        return json_answer(body, exc.status, exc.headers)

    def record(self, call: Call) -> None:
        """Hand the call's record to the recorder (never fails the call; with masking on, the
        record is finished in a worker thread and this returns at once)."""
        self._record(call)

    def _check_budget(self, call: Call) -> None:
        """429 when a ``reject`` budget covering the call is spent (MLflow's REJECT)."""
        if self.accounting is None or not self.accounting.budgets.budgets:
            return
        spent = self.accounting.budgets.exhausted(call.endpoint, call.meta.user_id, call.meta.tags)
        if spent is not None:
            budget, retry_after = spent
            raise GatewayError(
                429,
                f"budget {budget.name!r} (${budget.limit_usd:g} per {budget.period}) is spent",
                {"Retry-After": str(retry_after)},
            )

    def _record(self, call: Call) -> asyncio.Future[None] | None:
        """Submit the call's record; with masking on, in a worker thread (its future)."""
        try:
            row = call.row()
            if self.writer.redact_pii:
                loop = asyncio.get_running_loop()
                return loop.run_in_executor(self._finishing, self._submit, call, row)
        except Exception:  # recording trouble never fails the user's call
            log.exception("could not record gateway call id=%s", call.id)
            return None
        self._submit(call, row)
        return None

    def _submit(self, call: Call, row: dict[str, Any]) -> None:
        try:
            self.writer.submit(row, log_content=call.log_content)
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
