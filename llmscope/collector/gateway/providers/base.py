"""What every provider shares: the unified (OpenAI-shaped) interface, errors and retries.

A provider takes request bodies in the OpenAI wire format (which is also MLflow >= 2.9's
unified schema) and answers in it: a response dict, or for streams an async iterator of
``chat.completion.chunk`` / ``text_completion`` chunk dicts. Errors are :class:`ProviderError`
carrying the status and body the client should see, scrubbed of the provider's keys.

This module is transport (HTTP, signing, retries, SSE); providers whose API is another one
translate on typed payloads (``adapter.py``, ``payloads.py``), never by building the OpenAI
envelope themselves.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from llmscope.collector.gateway.body import BodyRefused, dump_json, parse_json
from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import (
    HttpPool,
    StreamedAnswer,
    UpstreamBroken,
    UpstreamUnreachable,
)
from llmscope.collector.ingest.encodable import might_hold_surrogates

# As MLflow's client retries too, only what a retry can fix: a 500 is answered, not repeated.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_WAIT = 30.0  # a longer Retry-After is handed to the client instead of waited out
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ProviderError(Exception):
    """A failed provider call: what the client gets back (status, JSON body, headers)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def message(self) -> str:
        body = self.body
        if isinstance(body, dict):
            inner = body.get("error", body.get("detail", body))
            if isinstance(inner, dict):
                inner = inner.get("message", inner)
            return f"{self.status}: {inner}"
        return f"{self.status}: {body}"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Reply:
    """A provider's whole answer (non-streaming calls): status, headers and body."""

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The parsed body (lone surrogates replaced); a 502 when it is not JSON."""
        try:
            return parse_json(self.body, "its body", limit=ANSWER_MAX_DEPTH)
        except BodyRefused as exc:
            raise bad_answer(f"HTTP {self.status_code}, but {exc}") from None


ANSWER_MAX_DEPTH = 256  # deeper than any answer; bounds the walks that record it


class RelayedAnswer(dict[str, Any]):
    """A provider's parsed answer that still holds the bytes it came as (:attr:`raw`), so an
    answer that passes through unchanged is relayed as sent instead of encoded again.

    Changing the answer's own keys drops the bytes; code that changes anything deeper in it
    calls :meth:`forget` first. An answer whose text had lone surrogates replaced while parsed
    never keeps its bytes (the client gets the text the record holds).
    """

    def __init__(self, answer: dict[str, Any], raw: bytes) -> None:
        super().__init__(answer)
        self.raw: bytes | None = None if might_hold_surrogates(raw) else raw

    def forget(self) -> None:
        """Drop the bytes: the answer is written anew from what it holds now."""
        self.raw = None

    def __setitem__(self, key: str, value: Any) -> None:
        self.raw = None
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.raw = None
        super().__delitem__(key)

    def pop(self, *args: Any) -> Any:
        self.raw = None
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self.raw = None
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.raw = None
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.raw = None
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self.raw = None
        super().clear()


def bad_answer(problem: str) -> ProviderError:
    """A 502 for a provider's answer that is not what its API promises (``problem`` says how)."""
    message = f"the provider answered {problem}"
    return ProviderError(502, {"error": {"message": message, "type": "provider_error"}})


def answer_object(answer: Any, items: str) -> dict[str, Any]:
    """``answer`` if it is an object whose ``items`` (``choices``, ``data``) is a list of
    objects, else a 502 (a shape the client and the record could not use)."""
    if not isinstance(answer, dict):
        raise bad_answer(f"a JSON {type(answer).__name__}, not an object")
    listed = answer.get(items)
    if not isinstance(listed, list) or not all(isinstance(i, dict) for i in listed):
        raise bad_answer(f"an object without a list of {items}")
    return answer


class Provider:
    """Base class: a provider for one endpoint, sharing the gateway's pooled HTTP client."""

    name = "base"
    offline = False
    has_responses = False  # speaks OpenAI's Responses API (else /v1/responses is translated)
    lean_streams = False  # streams read only through sse_data: the lean client may carry them

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        self.endpoint = endpoint
        self.model = endpoint.model.name
        self.config = endpoint.model.revealed_config()  # the keys this provider sends
        self.http = http
        connect = min(10.0, endpoint.timeout_seconds)
        # a whole answer must come within the timeout; a stream may not stall longer than it
        self.timeout = aiohttp.ClientTimeout(total=endpoint.timeout_seconds, connect=connect)
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_read=endpoint.timeout_seconds
        )

    # --- the unified interface (subclasses override what they support) --------------------
    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("chat")

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise self._unsupported("streaming chat")

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("completions")

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise self._unsupported("streaming completions")

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("embeddings")

    async def responses(self, body: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("the Responses API")

    async def responses_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise self._unsupported("the Responses API")

    # --- helpers --------------------------------------------------------------------------
    async def sign(self, url: str, data: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The headers to send with ``data`` (providers that sign requests override this)."""
        return headers

    def _unsupported(self, what: str) -> ProviderError:
        return ProviderError(
            400,
            {
                "error": {
                    "message": f"{self.name} does not support {what}",
                    "type": "invalid_request_error",
                }
            },
        )

    def secrets(self) -> list[str]:
        """Values that must never leave the gateway (keys from the config)."""
        return [v for k, v in self.config.items() if k.endswith("_api_key") and isinstance(v, str)]

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            if secret:
                text = text.replace(secret, "[REDACTED]")
        return text

    def _error_from(
        self, status: int, reason: str | None, headers: CIMultiDictProxy[str], content: bytes
    ) -> ProviderError:
        text = self.scrub(content.decode("utf-8", "replace"))
        try:
            body: Any = parse_json(text, "the error body", ANSWER_MAX_DEPTH)
        except BodyRefused:
            body = {
                "error": {
                    "message": text[:2000] or reason or f"HTTP {status}",
                    "type": "provider_error",
                }
            }
        extra = {}
        if "retry-after" in headers:
            extra["Retry-After"] = headers["retry-after"]
        return ProviderError(status, body, extra)

    def _transport_error(self, exc: BaseException) -> ProviderError:
        status = 504 if isinstance(exc, asyncio.TimeoutError | TimeoutError) else 502
        # Only the exception's type is shown: its text may name the URL; keys travel in headers.
        message = self.scrub(f"{self.name} provider unreachable: {type(exc).__name__}")
        return ProviderError(status, {"error": {"message": message, "type": "provider_error"}})

    async def send(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], *, stream: bool = False
    ) -> Any:
        """POST with retries on 429/502/503/504 and connection failures, honouring ``Retry-After``.

        Returns a :class:`Reply` (read whole), or with ``stream`` the open answer for
        :meth:`sse_data` (a ``StreamedAnswer`` of the lean client for providers with
        ``lean_streams``, else an ``aiohttp.ClientResponse``); raises ProviderError.
        """
        try:  # NaN or Infinity would be written bare: a body no provider can parse
            data = dump_json(payload)
            if b"null" in data:  # orjson writes NaN as null: let json look for one
                data = json.dumps(
                    payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")
                ).encode()
        except ValueError:
            message = "the request holds a number JSON cannot carry (NaN or Infinity)"
            raise ProviderError(
                400, {"error": {"message": message, "type": "invalid_request_error"}}
            ) from None
        send_headers = await self.sign(url, data, {"Content-Type": "application/json", **headers})
        attempt = 0
        while True:
            try:
                status, reason, answer_headers, content = await self._post_once(
                    url, data, send_headers, stream
                )
            except (aiohttp.ClientConnectorError, UpstreamUnreachable) as exc:
                if attempt >= self.endpoint.max_retries:
                    raise self._transport_error(exc) from None
                await asyncio.sleep(self._backoff(attempt, None))
                attempt += 1
                continue
            except (TimeoutError, aiohttp.ClientError, UpstreamBroken) as exc:
                raise self._transport_error(exc) from None
            if isinstance(content, aiohttp.ClientResponse | StreamedAnswer):
                return content  # a stream, open
            if status < 400:
                return Reply(status, answer_headers, content)
            error = self._error_from(status, reason, answer_headers, content)
            wait = self._backoff(attempt, answer_headers.get("retry-after"))
            retryable = status in RETRY_STATUSES and wait <= MAX_RETRY_WAIT
            if not retryable or attempt >= self.endpoint.max_retries:
                raise error
            await asyncio.sleep(wait)
            attempt += 1

    async def _post_once(
        self, url: str, data: bytes, headers: dict[str, str], stream: bool
    ) -> tuple[int, str | None, CIMultiDictProxy[str], Any]:
        """One POST: status, reason, headers and the whole body, or for a stream that is
        answered (< 400) the open response. Whole answers take the lean client when it can
        reach ``url`` (``http.Upstream``), else aiohttp."""
        upstream = self.http.upstream
        connect = self.timeout.connect or 10.0
        if stream and self.lean_streams and upstream.handles(url):
            timeout = self.endpoint.timeout_seconds
            opened = await upstream.open(
                url, data, headers, connect_timeout=connect, read_timeout=timeout
            )
            if opened.status in REDIRECTS:
                opened.release()  # the lean client follows no redirects: aiohttp does, below
            elif opened.status < 400:
                return opened.status, opened.reason, opened.headers, opened
            else:
                try:
                    content = await opened.read()
                except (TimeoutError, UpstreamBroken):
                    content = b""  # an error's body is only a courtesy
                finally:
                    opened.release()
                return opened.status, opened.reason, opened.headers, content
        elif not stream and upstream.handles(url):
            answer = await upstream.post(
                url, data, headers, connect_timeout=connect, timeout=self.endpoint.timeout_seconds
            )
            if answer.status not in REDIRECTS:  # the lean client follows none: aiohttp, below
                return answer.status, answer.reason, answer.headers, answer.body
        response = await self.http.session.post(
            # a percent-encoded path stays as built: a signature covers it byte for byte
            URL(url, encoded=True) if "%" in url else url,
            data=data,
            headers=headers,
            timeout=self.stream_timeout if stream else self.timeout,
        )
        if stream and response.status < 400:
            return response.status, response.reason, response.headers, response
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            if response.status < 400:
                raise  # an answer cut short
            content = b""  # an error's body is only a courtesy
        finally:
            response.release()
        return response.status, response.reason, response.headers, content

    @staticmethod
    def _backoff(attempt: int, retry_after: str | None) -> float:
        told = retry_after_seconds(retry_after)
        if told is not None:
            return told
        return 0.25 * float(2**attempt) * (0.5 + random.random())

    async def sse_data(
        self, response: aiohttp.ClientResponse | StreamedAnswer
    ) -> AsyncIterator[tuple[str, Any]]:
        """``(event, parsed data)`` pairs from an SSE response, until ``[DONE]``; closes it."""
        event = ""
        try:
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield event, parse_json(data, "a stream event", ANSWER_MAX_DEPTH)
                    except BodyRefused:
                        continue  # keep-alive comments and the like
                elif not line:
                    event = ""
        except (TimeoutError, aiohttp.ClientError, UpstreamBroken) as exc:
            raise self._transport_error(exc) from None
        finally:
            response.release()


# --- the OpenAI embeddings shape, which several providers answer in -----------------------------
def embeddings_answer(vectors: Iterable[Any], model: str, tokens: int | None) -> dict[str, Any]:
    """An OpenAI-shaped embeddings response."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
