"""The gateway's calls served without FastAPI's routing: the same answers, less CPU per call.

A gateway call is the collector's hot path, and FastAPI's per-request work around it (matching
the path against every route in turn, the request/response wrappers, dependency solving, the
exception middleware) was about a third of the gateway's CPU per call
(``docs/benchmarks/gateway.md``). :class:`FastPath` is an ASGI middleware placed innermost
among the collector's middlewares, so admission control, API keys and the body-size limit
apply to these calls exactly as to any other; it answers the six gateway POST paths
(:data:`PATHS`) itself, through the very ``Gateway.invoke`` the FastAPI routes in ``routes.py``
call (so both answer byte for byte the same), and hands every other request on. Exceptions go
to the app's own exception handlers (a 413 from the body-size limit reads as everywhere else);
anything they do not handle propagates, as it would from a route.

The call's request is read straight off ASGI (:class:`_Incoming`): its headers decoded once into
a dict and its body gathered from ``receive``, instead of a Starlette ``Request`` whose headers
are searched from the start at every lookup (a call makes about ten); with four workers at 200
in flight this and the rest of the hot path's per-call costs decide whether a call costs under
half a millisecond of CPU (``docs/benchmarks/gateway.md``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["PATHS", "FastPath", "gateway_call"]

# path -> (kind, flavor) for the fixed paths; the MLflow paths carry the endpoint's name.
PATHS: dict[str, tuple[str | None, str]] = {
    "/v1/chat/completions": ("chat", "openai"),
    "/v1/completions": ("completions", "openai"),
    "/v1/embeddings": ("embeddings", "openai"),
    "/v1/responses": ("chat", "responses"),
}
_NAMED = (("/endpoints/", "/invocations"), ("/gateway/", "/invocations"))


def gateway_call(path: str) -> tuple[str | None, str | None, str] | None:
    """``(endpoint name, kind, flavor)`` of a gateway POST path (the same paths and names as
    the routes in ``routes.py``), None for any other path."""
    fixed = PATHS.get(path)
    if fixed is not None:
        return None, fixed[0], fixed[1]
    for prefix, suffix in _NAMED:
        if path.startswith(prefix) and path.endswith(suffix):
            name = path[len(prefix) : -len(suffix)]
            if name and "/" not in name:
                return name, None, "mlflow"
    return None


class FastPath:
    """ASGI middleware: the gateway's POST calls answered directly (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        target = gateway_call(scope["path"])
        application: Any = scope.get("app")
        gateway = getattr(application.state, "gateway", None) if application else None
        if target is None or gateway is None:
            await self.app(scope, receive, send)
            return
        name, kind, flavor = target
        try:
            response = await gateway.invoke(_Incoming(scope, receive), name, kind, flavor)
        except Exception as exc:
            handler = _handler(application, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)


class _Incoming:
    """A gateway call's request as ``Gateway.invoke`` reads it (``body.CallRequest``)."""

    __slots__ = ("_receive", "headers")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        # ASGI servers give header names in lower case; of a repeated header the first one
        # counts, as with Starlette's ``Headers.get`` (so the dict is built from the last)
        raw = scope["headers"]
        self.headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(raw if isinstance(raw, list) else list(raw))
        }
        self._receive = receive

    async def body(self) -> bytes:
        """The whole body (read once); ClientDisconnect, as Starlette's, if the client left."""
        chunks: list[bytes] = []
        while True:
            message = await self._receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()


def _handler(application: Any, exc: Exception) -> Any:
    """The app's exception handler for ``exc`` (the nearest class in its MRO), or None."""
    handlers = getattr(application, "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
