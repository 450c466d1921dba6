"""Error answers: every 4xx names the problem in one readable ``message``.

Validation errors keep FastAPI's ``detail`` list (``loc``, ``msg``, ``type``) for programs and
add a ``message`` such as ``records[3].input_tokens: Input should be greater than or equal to 0``
for people. A body that is not JSON at all is a 400, not a 422.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

# Tags of the discriminated ingest body: not part of what the client sent.
_UNION_TAGS = {"batch", "record"}


def format_location(loc: Sequence[Any]) -> str:
    """``("body", "batch", "records", 3, "input_tokens")`` → ``records[3].input_tokens``."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    if parts and parts[0] in _UNION_TAGS:
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def _clean(error: dict[str, Any]) -> dict[str, Any]:
    loc = [p for i, p in enumerate(error.get("loc", ())) if not (i == 1 and p in _UNION_TAGS)]
    return {"loc": loc, "msg": error.get("msg", ""), "type": error.get("type", "")}


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return f"{format_location(error['loc'])}: unknown field"
    return f"{format_location(error['loc'])}: {error.get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(
            status_code=400,
            content={"message": "request body is not valid JSON", "detail": []},
        )
    cleaned = [_clean(e) for e in errors]
    summary = "; ".join(_message(e) for e in errors[:5])
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return JSONResponse(status_code=422, content={"message": summary, "detail": cleaned})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; list every route's.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return JSONResponse(
        status_code=exc.status_code,
        content={"message": str(exc.detail), "detail": exc.detail},
        headers=headers or None,
    )


def _allowed_methods(request: Request) -> set[str]:
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            allowed |= set(getattr(route, "methods", None) or ())
    return allowed


async def _store_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
    # The store is down or locked: tell the client to retry; nothing was acknowledged.
    return JSONResponse(
        status_code=503,
        content={"message": "the store is unavailable; retry later", "detail": None},
        headers={"Retry-After": "5"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _store_unavailable)  # type: ignore[arg-type]
