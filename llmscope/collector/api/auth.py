"""API-key authentication for every route of the collector (ingest, reads, OTLP, gateway) and
for OTLP/gRPC exports (the same keys, in the ``authorization`` metadata).

Until the first key is created the API is open (for a laptop on loopback; ``llmscope serve``
refuses a non-loopback address without keys unless ``--insecure``). Once any key exists, every
call but ``/health`` and the API docs needs ``Authorization: Bearer KEY``: 401 without a live
key, 403 when the key's scope does not cover the call. The scope a call needs follows from its
method and path, so routes added later are covered without touching them.

Verified keys are cached for ``CACHE_SECONDS``: a revoked key stops working within that time.
While the store is down the last verdicts stand (so gateway calls go on); a call that was never
checked before gets a 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from llmscope.keys import allows, any_keys, verify_key

CACHE_SECONDS = 2.0
OPEN_PATHS = {"/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
_INGEST_POSTS = re.compile(
    r"^/api/v1/records(/[^/]+/(feedback|evaluations))?/?$"
    r"|^/v1/(traces|chat/completions|completions|embeddings|responses)/?$"
    r"|^/(endpoints|gateway)/[^/]+/invocations/?$"
)
_MCP = re.compile(r"^/mcp/?$")


def needed_scope(method: str, path: str) -> str:
    """``ingest`` for calls that record LLM traffic, ``read`` for reads (the MCP server's
    read-only tools included, whatever the method), else ``admin``."""
    if method == "POST" and _INGEST_POSTS.match(path):
        return "ingest"
    if method in {"GET", "HEAD"} or _MCP.match(path):
        return "read"
    return "admin"


@dataclass(frozen=True)
class Denial:
    """Why a call is refused; ``status`` is the HTTP status (401, 403 or 503)."""

    status: int
    message: str


class KeyCheck:
    """Decides whether a call with a given key may go on: the key rules of the module docstring,
    with their caches. One per app, shared by the HTTP middleware and the OTLP/gRPC receiver."""

    def __init__(self, sessionmaker: sessionmaker[Session]) -> None:
        self.sessionmaker = sessionmaker
        self._keys_exist = False
        self._keys_checked_at = 0.0
        self._verified: dict[str, tuple[str | None, float]] = {}

    async def check(self, token: str | None, needed: str) -> Denial | None:
        """None when a call bearing ``token`` (None: no key) may do what needs scope ``needed``."""
        try:
            required = await self._auth_required()
            if not required:
                return None
            if token is None:
                return Denial(401, "an API key is required: Authorization: Bearer KEY")
            key_scope = await self._verify(token)
        except SQLAlchemyError:
            # The store is down: keys cannot be checked, so nothing is accepted; retry later.
            return Denial(503, "the store is unavailable; retry later")
        if key_scope is None:
            return Denial(401, "the API key is not valid (unknown or revoked)")
        if not allows(key_scope, needed):
            return Denial(403, f"this key has scope {key_scope!r}; the call needs {needed!r}")
        return None

    async def _auth_required(self) -> bool:
        # Keys only ever start to exist, so a True answer is kept for good.
        now = time.monotonic()
        if not self._keys_exist and now - self._keys_checked_at > CACHE_SECONDS:
            try:
                self._keys_exist = await run_in_threadpool(self._query_any_keys)
            except SQLAlchemyError:
                if not self._keys_checked_at:
                    raise  # never known: cannot decide
                # The store is down: go on with the last answer, so the gateway keeps serving.
            self._keys_checked_at = now
        return self._keys_exist

    def _query_any_keys(self) -> bool:
        with self.sessionmaker() as session:
            return any_keys(session)

    async def _verify(self, token: str) -> str | None:
        now = time.monotonic()
        cached = self._verified.get(token)
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            return cached[0]
        try:
            scope = await run_in_threadpool(self._query_verify, token)
        except SQLAlchemyError:
            if cached is None:
                raise
            return cached[0]  # the store is down: trust the last verdict on this key
        if len(self._verified) > 10_000:  # bounded: garbage tokens must not grow memory
            self._verified.clear()
        self._verified[token] = (scope, now)
        return scope

    def _query_verify(self, token: str) -> str | None:
        with self.sessionmaker() as session:
            scope = verify_key(session, token)
            session.commit()  # last_used_at
            return scope


class ApiKeyAuth:
    """ASGI middleware enforcing API keys once any exists."""

    def __init__(self, app: ASGIApp, keys: KeyCheck) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        denial = await self.keys.check(_bearer(scope), needed_scope(scope["method"], scope["path"]))
        if denial is not None:
            await _deny(send, denial.status, denial.message)
            return
        await self.app(scope, receive, send)


def bearer_token(value: str) -> str | None:
    """The key in an ``authorization`` value (``Bearer KEY``, any case), else None."""
    kind, _, token = value.partition(" ")
    if kind.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            return bearer_token(value.decode("latin-1"))
    return None


async def _deny(send: Send, status: int, message: str) -> None:
    body = json.dumps({"message": message, "detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="llmscope"'))
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
