"""``gemini`` (Google AI Studio) and ``vertex_ai``: the ``generateContent`` API, mapped both ways.

Requests: system messages become ``systemInstruction``; ``assistant`` turns are ``model`` turns;
text, ``image_url`` parts (data URLs as ``inlineData``, others as ``fileData``), an assistant's
``tool_calls`` (``functionCall`` parts) and ``tool`` results (``functionResponse`` parts, named
after the call they answer) become ``parts``; ``temperature``, ``top_p``, ``top_k``,
``max_tokens``, ``stop`` and ``n`` go into ``generationConfig``; function tools become
``functionDeclarations`` and ``tool_choice`` a ``functionCallingConfig``. Answers come back
OpenAI-shaped (``functionCall`` parts as ``tool_calls``; every candidate a choice); streams use
``streamGenerateContent?alt=sse``; embeddings ``batchEmbedContents`` (Vertex: ``predict``).

``gemini`` authenticates with ``x-goog-api-key`` (``gemini_api_key``); ``vertex_ai`` with an
OAuth token from ``vertex_credentials`` (a service-account JSON file path or its text, via
``google-auth``), or the environment's default credentials, for ``vertex_project`` in
``vertex_location`` (default ``us-central1``).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.adapter import TranslatingProvider
from llmscope.collector.gateway.providers.base import ProviderError, embeddings_answer
from llmscope.collector.gateway.providers.payloads import (
    Choice,
    ChunkEnvelope,
    RequestPayload,
    ResponsePayload,
    Usage,
)

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}
_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,(.*)$", re.DOTALL)


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            match = _DATA_URL.match(url)
            if match:
                parts.append({"inlineData": {"mimeType": match.group(1), "data": match.group(2)}})
            else:
                parts.append({"fileData": {"fileUri": url}})
    return parts


def _args(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def to_gemini(request: RequestPayload) -> dict[str, Any]:
    """A chat request as a ``generateContent`` request."""
    messages = request.messages
    system = [m for m in messages if m.get("role") in ("system", "developer")]
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role == "tool":
            call_id = str(message.get("tool_call_id"))
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            reply = {"name": call_names.get(call_id, call_id), "response": {"content": text}}
            part = {"functionResponse": reply}
            if (
                contents
                and contents[-1]["role"] == "user"
                and "functionResponse" in str(contents[-1]["parts"])
            ):
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            continue
        parts = _parts(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            call_names[str(call.get("id"))] = str(function.get("name"))
            call_part = {"name": function.get("name"), "args": _args(function.get("arguments"))}
            parts.append({"functionCall": call_part})
        contents.append({"role": "model" if role == "assistant" else "user", "parts": parts})
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {
            "parts": [p for m in system for p in _parts(m.get("content"))]
        }
    config = request.renamed(
        (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("max_tokens", "maxOutputTokens"),
            ("max_completion_tokens", "maxOutputTokens"),
            ("n", "candidateCount"),
        ),
    )
    if stop := request.stop:
        config["stopSequences"] = stop
    if config:
        payload["generationConfig"] = config
    tools = request.function_tools
    if tools:
        declarations = [
            {k: v for k, v in f.items() if k in ("name", "description", "parameters")}
            for f in tools
        ]
        payload["tools"] = [{"functionDeclarations": declarations}]
    choice = request.get("tool_choice")
    if choice is not None:
        modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            calling = {"mode": "ANY", "allowedFunctionNames": [name]}
        else:
            calling = {"mode": modes.get(str(choice), "AUTO")}
        payload["toolConfig"] = {"functionCallingConfig": calling}
    return payload


def _message(candidate: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            texts.append(part["text"])
        elif "functionCall" in part:
            call = part["functionCall"]
            calls.append(
                {
                    "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {
                        "name": call.get("name"),
                        "arguments": json.dumps(call.get("args") or {}),
                    },
                }
            )
    return ("".join(texts) if texts or not calls else None), calls


def _usage(meta: Any) -> Usage:
    meta = meta if isinstance(meta, dict) else {}
    return Usage.of(
        int(meta.get("promptTokenCount") or 0), int(meta.get("candidatesTokenCount") or 0)
    )


class GeminiProvider(TranslatingProvider):
    name = "gemini"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        base = self.config.get("gemini_api_base") or "https://generativelanguage.googleapis.com"
        self.base = f"{str(base).rstrip('/')}/v1beta/models/{self.model}"

    async def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": str(self.config["gemini_api_key"])}

    def url(self, method: str) -> str:
        return f"{self.base}:{method}"

    async def _post(self, method: str, payload: dict[str, Any], stream: bool = False) -> Any:
        url = self.url(method) + ("?alt=sse" if stream else "")
        return await self.send(url, payload, await self.auth_headers(), stream=stream)

    async def answer(self, request: RequestPayload) -> ResponsePayload:
        answer = (await self._post("generateContent", to_gemini(request))).json()
        choices = []
        for index, candidate in enumerate(answer.get("candidates") or []):
            text, calls = _message(candidate)
            finish = "tool_calls" if calls else FINISH.get(candidate.get("finishReason"), "stop")
            choices.append(Choice(text, calls, finish, candidate.get("index", index)))
        return ResponsePayload(
            request.kind,
            answer.get("modelVersion") or self.model,
            choices,
            _usage(answer.get("usageMetadata")),
            id=answer.get("responseId"),
        )

    async def stream(self, request: RequestPayload) -> AsyncIterator[dict[str, Any]]:
        response = await self._post("streamGenerateContent", to_gemini(request), True)
        return self._chunks(response, request.kind)

    async def _chunks(self, response: Any, kind: str) -> AsyncIterator[dict[str, Any]]:
        out = ChunkEnvelope(kind, self.model)
        usage: Usage | None = None
        calls_seen: dict[int, int] = {}
        async for _event, data in self.sse_data(response):
            if not isinstance(data, dict):
                continue
            if "error" in data:
                yield {"error": data["error"]}
                return
            if data.get("usageMetadata"):
                usage = _usage(data["usageMetadata"])
            choices = []
            for position, candidate in enumerate(data.get("candidates") or []):
                index = candidate.get("index", position)
                text, calls = _message(candidate)
                reason = candidate.get("finishReason")
                finish = None
                if reason:
                    finish = (
                        "tool_calls"
                        if calls_seen.get(index) or calls
                        else FINISH.get(reason, "stop")
                    )
                delta: dict[str, Any] = {}
                if text:
                    delta["content"] = text
                if calls and kind == "chat":
                    start = calls_seen.get(index, 0)
                    delta["tool_calls"] = [
                        {"index": start + i, **call} for i, call in enumerate(calls)
                    ]
                    calls_seen[index] = start + len(calls)
                choices.append(out.choice(delta, finish, index))
            yield out.chunk(choices)
        yield out.usage(usage or _usage(None))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw or []]
        requests = [
            {"model": f"models/{self.model}", "content": {"parts": [{"text": t}]}} for t in texts
        ]
        answer = (await self._post("batchEmbedContents", {"requests": requests})).json()
        vectors = [e.get("values") for e in answer.get("embeddings") or []]
        return _embedding_answer(vectors, self.model, texts)


def _embedding_answer(vectors: list[Any], model: str, texts: list[str]) -> dict[str, Any]:
    # Gemini does not count embedding tokens; this estimate keeps the record's count useful.
    return embeddings_answer(vectors, model, sum(max(1, len(t.split())) for t in texts))


class VertexAIProvider(GeminiProvider):
    name = "vertex_ai"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        project = self.config["vertex_project"]
        location = str(self.config.get("vertex_location") or "us-central1")
        host = (
            "https://aiplatform.googleapis.com"
            if location == "global"
            else f"https://{location}-aiplatform.googleapis.com"
        )
        base = str(self.config.get("vertex_api_base") or host).rstrip("/")
        self.base = (
            f"{base}/v1/projects/{project}/locations/{location}/publishers/google/models/"
            f"{self.model}"
        )
        self._credentials: Any = None

    async def auth_headers(self) -> dict[str, str]:
        token = await asyncio.to_thread(self._token)
        return {"Authorization": f"Bearer {token}"}

    def _token(self) -> str:
        try:
            import google.auth
            import google.auth.transport.requests
            from google.oauth2 import service_account
        except ImportError:
            raise ProviderError(
                500,
                {"error": {"message": "vertex_ai needs google-auth: pip install google-auth"}},
            ) from None
        scopes = ["https://www.googleapis.com/auth/cloud-platform"]
        if self._credentials is None:
            given = self.config.get("vertex_credentials")
            if given:
                text = str(given)
                raw = text if text.lstrip().startswith("{") else Path(text).read_text()
                info = json.loads(raw)
                self._credentials = service_account.Credentials.from_service_account_info(
                    info, scopes=scopes
                )
            else:
                self._credentials, _ = google.auth.default(scopes=scopes)
        if not self._credentials.valid:
            self._credentials.refresh(google.auth.transport.requests.Request())
        return str(self._credentials.token)

    def secrets(self) -> list[str]:
        return [str(self.config.get("vertex_credentials") or "")] + super().secrets()

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw or []]
        payload = {"instances": [{"content": t} for t in texts]}
        answer = (await self._post("predict", payload)).json()
        vectors = [
            (p.get("embeddings") or {}).get("values") for p in answer.get("predictions") or []
        ]
        return _embedding_answer(vectors, self.model, texts)
