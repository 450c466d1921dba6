"""Requests on MLflow's paths checked as MLflow's server checks them: 422 before any call.

MLflow's deployments server validates the body against its request schema and answers 422
(FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``) without calling the provider; its client
does not retry a 422. The models below accept what MLflow accepts (extra fields pass through to
the provider) and refuse what it refuses: no or empty ``messages``, a message without ``role``,
``n``/``max_tokens`` below 1, ``temperature`` outside 0-2, ``top_p`` outside 0-1, a ``prompt``
that is not text, an embeddings body without ``input`` (the pre-2.9 ``text`` is refused too, as
MLflow >= 2.9 refuses it) or whose ``input`` is not text or tokens.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError


class InvalidRequest(Exception):
    """A 422: ``errors`` as FastAPI lists them, ``str(exc)`` the first one in a line."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"][1:])
        super().__init__(f"{where}: {first['msg']}" if where else first["msg"])


class _Params(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int = Field(1, ge=1)
    stop: StrictStr | list[StrictStr] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    top_k: int | None = Field(None, ge=1)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: StrictStr | None = None


class _Tool(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function", "uc_function"]
    function: dict[str, Any] | None = None


class _Chat(_Params):
    messages: list[_Message] = Field(min_length=1)
    tools: list[_Tool] | None = Field(None, min_length=1)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None


class _Completions(_Params):
    prompt: StrictStr


class _Embeddings(BaseModel):
    model_config = ConfigDict(extra="allow")

    input: StrictStr | list[StrictStr] | list[int] | list[list[int]]


_MODELS: dict[str, type[BaseModel]] = {
    "chat": _Chat,
    "completions": _Completions,
    "embeddings": _Embeddings,
}


def check_mlflow_request(body: dict[str, Any], kind: str) -> None:
    """Raise :class:`InvalidRequest` when MLflow's server would refuse ``body`` for ``kind``."""
    model = _MODELS[kind]
    try:
        model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise InvalidRequest(errors) from None
