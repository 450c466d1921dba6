"""Fake servers for the providers beyond OpenAI and Anthropic, each in its own wire format.

One Starlette app serves Cohere (``/cohere/v2/chat``, ``/cohere/v2/embed``), Gemini
(``/gemini/v1beta/models/{model}:{method}``), Vertex AI, Bedrock (``/bedrock/model/{id}/...``,
the SigV4 signature recomputed and compared; streams in AWS's binary event stream), TGI
(``/tgi/generate``, ``/tgi/generate_stream``, ``/tgi/v1/chat/completions``) and MLflow model
serving (``/mlflow/invocations``). Each checks its auth, keeps what it received, answers
``Echo: <last user text>`` and, when offered tools, calls the first one. Errors come in each
vendor's own error body.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

COHERE_KEY = "co-test-COHEREk3y0000000000"
GEMINI_KEY = "AIza-test-GEMINIk3y00000000"
AWS_ID, AWS_SECRET = "AKIATESTFAKE00000000", "fake/secret/BEDROCKs3cr3t000000000000"
AWS_REGION = "eu-west-3"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    pieces = []
    for part in content or []:
        if isinstance(part, dict):
            pieces.append(str(part.get("text", "")))
    return "".join(pieces)


def _sse(events: list[str]) -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        for event in events:
            yield event
            await asyncio.sleep(0.002)

    return StreamingResponse(gen(), media_type="text/event-stream")


def event_message(event_type: str, payload: dict[str, Any], kind: str = "event") -> bytes:
    """One message of AWS's binary event stream (as Bedrock's converse-stream sends them)."""
    headers = b""
    pairs = {":message-type": kind, ":content-type": "application/json"}
    pairs[":exception-type" if kind == "exception" else ":event-type"] = event_type
    for name, value in pairs.items():
        raw_name, raw_value = name.encode(), value.encode()
        headers += struct.pack("!B", len(raw_name)) + raw_name
        headers += struct.pack("!BH", 7, len(raw_value)) + raw_value
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


class ProviderFakes:
    """State and routes of every fake: what each received, failures to serve next."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: list[tuple[int, dict[str, Any]]] = []
        self.url = ""  # set once served: the Bedrock signature covers the host
        self.app = Starlette(
            routes=[
                Route("/cohere/v2/chat", self.cohere_chat, methods=["POST"]),
                Route("/cohere/v2/embed", self.cohere_embed, methods=["POST"]),
                Route("/gemini/v1beta/models/{target:path}", self.gemini, methods=["POST"]),
                Route("/vertex/v1/projects/{target:path}", self.gemini, methods=["POST"]),
                Route("/bedrock/model/{model}/{action}", self.bedrock, methods=["POST"]),
                Route("/tgi/generate", self.tgi_generate, methods=["POST"]),
                Route("/tgi/generate_stream", self.tgi_generate, methods=["POST"]),
                Route("/tgi/v1/chat/completions", self.tgi_chat, methods=["POST"]),
                Route("/mlflow/invocations", self.mlflow_invocations, methods=["POST"]),
            ]
        )

    async def _take(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        body = json.loads(raw)
        self.requests.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body, "raw": raw}
        )
        return body

    # --- Cohere v2 ------------------------------------------------------------------------
    def _cohere_denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {COHERE_KEY}":
            return JSONResponse({"message": "invalid api token"}, 401)
        if self.fail:
            status, body = self.fail.pop(0)
            return JSONResponse(body, status)
        return None

    async def cohere_chat(self, request: Request) -> Response:
        body = await self._take(request)
        denied = self._cohere_denied(request)
        if denied:
            return denied
        user = next(m for m in reversed(body["messages"]) if m["role"] in ("user", "tool"))
        text = f"Echo: {_text(user.get('content'))}"
        usage = {"billed_units": {"input_tokens": 6, "output_tokens": 3},
                 "tokens": {"input_tokens": 60, "output_tokens": 3}}  # fmt: skip
        call = None
        if body.get("tools") and body["messages"][-1]["role"] != "tool":
            arguments = json.dumps({"query": _text(user.get("content"))})
            name = body["tools"][0]["function"]["name"]
            call = {"id": "co_call1", "type": "function",
                    "function": {"name": name, "arguments": arguments}}  # fmt: skip
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant"}
            if call:
                message["tool_plan"] = "I will call the tool."
                message["tool_calls"] = [call]
            else:
                message["content"] = [{"type": "text", "text": text}]
            finish = "TOOL_CALL" if call else "COMPLETE"
            return JSONResponse(
                {"id": "co-1", "finish_reason": finish, "message": message, "usage": usage}
            )

        def event(kind: str, **data: Any) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

        events = [event("message-start", id="co-1", delta={"message": {"role": "assistant"}})]
        if call:
            start = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(event("tool-call-start", index=0,
                                delta={"message": {"tool_calls": start}}))  # fmt: skip
            arguments = call["function"]["arguments"]
            for piece in (arguments[:6], arguments[6:]):
                delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
                events.append(event("tool-call-delta", index=0, delta=delta))
            events.append(event("tool-call-end", index=0))
        else:
            for i, word in enumerate(text.split(" ")):
                delta = {"message": {"content": {"text": (" " if i else "") + word}}}
                events.append(event("content-delta", index=0, delta=delta))
        finish = "TOOL_CALL" if call else "COMPLETE"
        events.append(event("message-end", delta={"finish_reason": finish, "usage": usage}))
        return _sse(events)

    async def cohere_embed(self, request: Request) -> Response:
        body = await self._take(request)
        denied = self._cohere_denied(request)
        if denied:
            return denied
        vectors = [[float(len(t)), 1.0] for t in body["texts"]]
        return JSONResponse(
            {
                "id": "emb-1",
                "embeddings": {"float": vectors},
                "texts": body["texts"],
                "meta": {"billed_units": {"input_tokens": 2 * len(body["texts"])}},
            }
        )

    # --- Gemini / Vertex AI ---------------------------------------------------------------
    async def gemini(self, request: Request) -> Response:
        body = await self._take(request)
        vertex = request.url.path.startswith("/vertex/")
        ok = (
            request.headers.get("authorization", "").startswith("Bearer ya29.")
            if vertex
            else request.headers.get("x-goog-api-key") == GEMINI_KEY
        )
        if not ok:
            error = {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}
            return JSONResponse({"error": error}, 403)
        if self.fail:
            status, failure = self.fail.pop(0)
            return JSONResponse(failure, status)
        method = request.url.path.rsplit(":", 1)[-1]
        if method == "batchEmbedContents":
            texts = [r["content"]["parts"][0]["text"] for r in body["requests"]]
            return JSONResponse({"embeddings": [{"values": [float(len(t)), 2.0]} for t in texts]})
        if method == "predict":
            texts = [i["content"] for i in body["instances"]]
            predictions = [{"embeddings": {"values": [float(len(t)), 3.0]}} for t in texts]
            return JSONResponse({"predictions": predictions})
        last = body["contents"][-1]
        user = "".join(p.get("text", "") for p in last["parts"])
        tools = body.get("tools") or []
        answered = any("functionResponse" in p for p in last["parts"])
        if tools and not answered:
            name = tools[0]["functionDeclarations"][0]["name"]
            parts: list[dict[str, Any]] = [
                {"functionCall": {"name": name, "args": {"query": user}}}
            ]
        else:
            parts = [{"text": f"Echo: {user}"}]
        count = (body.get("generationConfig") or {}).get("candidateCount", 1)
        usage = {"promptTokenCount": 7, "candidatesTokenCount": 4, "totalTokenCount": 11}
        candidates = [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": i}
            for i in range(count)
        ]
        if method == "generateContent":
            return JSONResponse(
                {"candidates": candidates, "usageMetadata": usage, "modelVersion": "gemini-x"}
            )
        # streamGenerateContent?alt=sse: the text in two chunks, usage on the last
        events = []
        if "text" in parts[0]:
            words = parts[0]["text"].split(" ")
            halves = [" ".join(words[:1]) + " ", " ".join(words[1:])]
            for i, half in enumerate(halves):
                chunk: dict[str, Any] = {
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"text": half}]}, "index": 0}
                    ]  # fmt: skip
                }
                if i == 1:
                    chunk["candidates"][0]["finishReason"] = "STOP"
                    chunk["usageMetadata"] = usage
                events.append(f"data: {json.dumps(chunk)}\r\n\r\n")
        else:
            chunk = {"candidates": candidates, "usageMetadata": usage}
            events.append(f"data: {json.dumps(chunk)}\r\n\r\n")
        return _sse(events)

    # --- Bedrock --------------------------------------------------------------------------
    def _bedrock_signed(self, request: Request, raw: bytes) -> bool:
        given = request.headers.get("authorization", "")
        if not given.startswith("AWS4-HMAC-SHA256 ") or f"/{AWS_REGION}/bedrock/" not in given:
            return False
        signed = given.split("SignedHeaders=")[1].split(",")[0].split(";")
        headers = {name: request.headers[name] for name in signed}
        # the path as sent (still percent-encoded): Starlette's request.url has it decoded
        url = f"{self.url}{request.scope['raw_path'].decode()}"
        again = AWSRequest(method="POST", url=url, data=raw, headers=headers)
        again.context["timestamp"] = request.headers["x-amz-date"]
        auth = SigV4Auth(Credentials(AWS_ID, AWS_SECRET), "bedrock", AWS_REGION)
        # the same canonical request and key must give the same signature
        expected = auth.signature(auth.string_to_sign(again, auth.canonical_request(again)), again)
        return given.endswith(f"Signature={expected}")

    async def bedrock(self, request: Request) -> Response:
        body = await self._take(request)
        raw = self.requests[-1]["raw"]
        if not self._bedrock_signed(request, raw):
            message = (
                "The request signature we calculated does not match the signature you provided."
            )
            return JSONResponse(
                {"message": message}, 403, headers={"x-amzn-ErrorType": "InvalidSignatureException"}
            )
        if self.fail:
            status, failure = self.fail.pop(0)
            return JSONResponse(failure, status)
        action = request.path_params["action"]
        if action == "invoke":
            text = body["inputText"]
            return JSONResponse({"embedding": [float(len(text)), 4.0], "inputTextTokenCount": 3})
        last = body["messages"][-1]
        user = "".join(b.get("text", "") for b in last["content"])
        has_result = any("toolResult" in b for b in last["content"])
        tools = (body.get("toolConfig") or {}).get("tools") or []
        usage = {"inputTokens": 9, "outputTokens": 5, "totalTokens": 14}
        use = None
        if tools and not has_result:
            use = {"toolUseId": "tooluse_1", "name": tools[0]["toolSpec"]["name"],
                   "input": {"query": user}}  # fmt: skip
        if action == "converse":
            content = [{"toolUse": use}] if use else [{"text": f"Echo: {user}"}]
            return JSONResponse(
                {
                    "output": {"message": {"role": "assistant", "content": content}},
                    "stopReason": "tool_use" if use else "end_turn",
                    "usage": usage,
                    "metrics": {"latencyMs": 12},
                }
            )
        messages = [event_message("messageStart", {"role": "assistant"})]
        if use:
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            messages.append(event_message("contentBlockStart",
                                          {"start": start, "contentBlockIndex": 0}))  # fmt: skip
            arguments = json.dumps(use["input"])
            for piece in (arguments[:5], arguments[5:]):
                delta = {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": 0}
                messages.append(event_message("contentBlockDelta", delta))
        else:
            for i, word in enumerate(f"Echo: {user}".split(" ")):
                delta = {"delta": {"text": (" " if i else "") + word}, "contentBlockIndex": 0}
                messages.append(event_message("contentBlockDelta", delta))
        messages.append(event_message("contentBlockStop", {"contentBlockIndex": 0}))
        reason = "tool_use" if use else "end_turn"
        messages.append(event_message("messageStop", {"stopReason": reason}))
        messages.append(event_message("metadata", {"usage": usage, "metrics": {"latencyMs": 9}}))

        async def stream() -> AsyncIterator[bytes]:
            for message in messages:
                yield message
                await asyncio.sleep(0.002)

        return StreamingResponse(stream(), media_type="application/vnd.amazon.eventstream")

    # --- Hugging Face TGI -----------------------------------------------------------------
    async def tgi_generate(self, request: Request) -> Response:
        body = await self._take(request)
        if self.fail:
            status, failure = self.fail.pop(0)
            return JSONResponse(failure, status)
        text = f"Echo: {body['inputs']}"
        words = text.split(" ")
        if request.url.path.endswith("/generate"):
            prefill = [{"id": 1, "text": w} for w in body["inputs"].split()]
            details = {"finish_reason": "eos_token", "generated_tokens": len(words),
                       "prefill": prefill}  # fmt: skip
            return JSONResponse({"generated_text": text, "details": details})
        events = []
        for i, word in enumerate(words):
            token = {"id": i, "text": (" " if i else "") + word, "logprob": -0.1, "special": False}
            last = i == len(words) - 1
            details = {"finish_reason": "eos_token", "generated_tokens": len(words)}
            data = {"token": token, "generated_text": text if last else None,
                    "details": details if last else None}  # fmt: skip
            events.append(f"data:{json.dumps(data)}\n\n")
        return _sse(events)

    async def tgi_chat(self, request: Request) -> Response:
        body = await self._take(request)
        text = f"Echo: {_text(body['messages'][-1]['content'])}"
        usage = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "tgi-1",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": usage,
                }
            )  # fmt: skip
        base = {"id": "tgi-1", "object": "chat.completion.chunk", "created": 1700000000,
                "model": body["model"]}  # fmt: skip
        events = [
            f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'content': w + ' '}, 'finish_reason': None}]})}\n\n"  # noqa: E501
            for w in text.split(" ")
        ]
        events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n")
        events.append("data: [DONE]\n\n")
        return _sse(events)

    # --- MLflow model serving -------------------------------------------------------------
    async def mlflow_invocations(self, request: Request) -> Response:
        body = await self._take(request)
        inputs = body["inputs"]
        if inputs and isinstance(inputs[0], str) and inputs[0].startswith("vec:"):
            return JSONResponse({"predictions": [[float(len(t)), 5.0] for t in inputs]})
        if not all(isinstance(i, str) for i in inputs):
            return JSONResponse(
                {"error_code": "BAD_REQUEST", "message": "inputs must be text"}, 400
            )
        return JSONResponse({"predictions": [f"Echo: {i}" for i in inputs]})
