"""``bedrock`` (``amazon-bedrock``): Amazon Bedrock's Converse API, signed with SigV4 by botocore.

Chat and completions go to ``/model/{id}/converse`` (streams: ``converse-stream``, AWS's binary
event stream, decoded with botocore's parser): system messages become ``system``, text and
images become content blocks, an assistant's ``tool_calls`` become ``toolUse`` blocks and
``tool`` messages ``toolResult`` blocks in a user turn, function tools a ``toolConfig``;
``max_tokens``/``temperature``/``top_p``/``stop`` go into ``inferenceConfig``. Embeddings go to
``/model/{id}/invoke`` (Titan's ``inputText``, or Cohere's ``texts`` for ``cohere.*`` models).

Credentials (MLflow's ``aws_config``): ``aws_access_key_id``/``aws_secret_access_key``
(``aws_session_token``), or ``aws_role_arn`` (assumed through STS for
``session_length_seconds``), or ``aws_bearer_token`` (Bedrock API keys), else botocore's default
chain (environment, profile, instance role). ``aws_region`` defaults to ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, else ``us-east-1``. ``bedrock_endpoint_url`` (llmscope) points elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.session import Session

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

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
_DATA_URL = re.compile(r"^data:image/([\w+.-]+);base64,(.*)$", re.DOTALL)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            match = _DATA_URL.match((part.get("image_url") or {}).get("url", ""))
            if match:  # Converse takes image bytes only, not URLs
                image = {"format": match.group(1), "source": {"bytes": match.group(2)}}
                blocks.append({"image": image})
    return blocks


def to_converse(request: RequestPayload) -> dict[str, Any]:
    """A chat request as a Converse request."""
    payload: dict[str, Any] = {"messages": []}
    turns: list[dict[str, Any]] = payload["messages"]
    system: list[dict[str, Any]] = []
    for message in request.messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system += _blocks(message.get("content"))
            continue
        if role == "tool":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            result = {"toolUseId": message.get("tool_call_id"), "content": [{"text": text}]}
            if turns and turns[-1]["role"] == "user" and "toolResult" in turns[-1]["content"][-1]:
                turns[-1]["content"].append({"toolResult": result})
            else:
                turns.append({"role": "user", "content": [{"toolResult": result}]})
            continue
        blocks = _blocks(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = {"_raw": function.get("arguments")}
            use = {"toolUseId": call.get("id"), "name": function.get("name"), "input": arguments}
            blocks.append({"toolUse": use})
        turns.append({"role": "assistant" if role == "assistant" else "user", "content": blocks})
    if system:
        payload["system"] = system
    config = request.renamed(
        (("max_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP"))
    )
    if stop := request.stop:
        config["stopSequences"] = stop
    if config:
        payload["inferenceConfig"] = config
    tools = request.function_tools
    if tools:
        specs = []
        for function in tools:
            spec = {
                "name": function.get("name"),
                "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
            }
            if function.get("description"):
                spec["description"] = function["description"]
            specs.append({"toolSpec": spec})
        tool_config: dict[str, Any] = {"tools": specs}
        choice = request.get("tool_choice")
        if choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        elif choice == "auto":
            tool_config["toolChoice"] = {"auto": {}}
        elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            tool_config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
        payload["toolConfig"] = tool_config
    return payload


def _usage(usage: Any) -> Usage:
    usage = usage if isinstance(usage, dict) else {}
    return Usage.of(int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0))


class BedrockProvider(TranslatingProvider):
    name = "bedrock"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        self.aws: dict[str, Any] = dict(self.config.get("aws_config") or {})
        self.region = str(
            self.aws.get("aws_region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        default = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        self.base = str(self.config.get("bedrock_endpoint_url") or default).rstrip("/")
        self._credentials: Credentials | None = None
        self._expires = 0.0

    def url(self, action: str) -> str:
        return f"{self.base}/model/{quote(self.model, safe='')}/{action}"

    def secrets(self) -> list[str]:
        keys = ("aws_secret_access_key", "aws_session_token", "aws_bearer_token")
        return [str(self.aws[k]) for k in keys if self.aws.get(k)] + super().secrets()

    # --- credentials and signing ----------------------------------------------------------
    def _resolve_credentials(self) -> Credentials:
        if self.aws.get("aws_access_key_id"):
            self._expires = float("inf")
            return Credentials(
                str(self.aws["aws_access_key_id"]),
                str(self.aws.get("aws_secret_access_key") or ""),
                self.aws.get("aws_session_token"),
            )
        session = Session()
        if self.aws.get("aws_role_arn"):
            seconds = int(self.aws.get("session_length_seconds") or 900)
            sts = session.create_client("sts", region_name=self.region)
            found = sts.assume_role(
                RoleArn=str(self.aws["aws_role_arn"]),
                RoleSessionName="llmscope-gateway",
                DurationSeconds=seconds,
            )["Credentials"]
            self._expires = time.monotonic() + seconds - 60
            return Credentials(
                found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"]
            )
        chain = session.get_credentials()
        if chain is None:
            raise ProviderError(
                500,
                {
                    "error": {
                        "message": "bedrock: no AWS credentials (aws_config or the default chain)"
                    }
                },
            )
        self._expires = time.monotonic() + 300  # re-read the chain: instance roles rotate
        frozen = chain.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def sign(self, url: str, data: bytes, headers: dict[str, str]) -> dict[str, str]:
        if self.aws.get("aws_bearer_token"):
            return {**headers, "Authorization": f"Bearer {self.aws['aws_bearer_token']}"}
        if self._credentials is None or time.monotonic() >= self._expires:
            self._credentials = await asyncio.to_thread(self._resolve_credentials)
        request = AWSRequest(method="POST", url=url, data=data, headers=dict(headers))
        SigV4Auth(self._credentials, "bedrock", self.region).add_auth(request)
        return dict(request.headers.items())

    # --- calls ----------------------------------------------------------------------------
    async def answer(self, request: RequestPayload) -> ResponsePayload:
        reply = await self.send(self.url("converse"), to_converse(request), {})
        answer = reply.json()
        texts, calls = [], []
        for block in ((answer.get("output") or {}).get("message") or {}).get("content") or []:
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append(
                    {
                        "id": use.get("toolUseId"),
                        "type": "function",
                        "function": {
                            "name": use.get("name"),
                            "arguments": json.dumps(use.get("input") or {}),
                        },
                    }
                )
        text = "".join(texts) if texts or not calls else None
        finish = FINISH.get(answer.get("stopReason") or "", "stop")
        return ResponsePayload(
            request.kind, self.model, [Choice(text, calls, finish)], _usage(answer.get("usage"))
        )

    async def stream(self, request: RequestPayload) -> AsyncIterator[dict[str, Any]]:
        response = await self.send(
            self.url("converse-stream"), to_converse(request), {}, stream=True
        )
        return self._events(response, request.kind)

    async def _messages(self, response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
        """(event type, payload) from AWS's binary event stream; an exception as ``error``."""
        buffer = EventStreamBuffer()
        try:
            async for data in response.content.iter_any():
                buffer.add_data(data)
                for message in buffer:
                    headers = message.headers
                    payload = json.loads(message.payload or b"{}")
                    if headers.get(":message-type") == "exception":
                        yield "error", {"type": headers.get(":exception-type"), **payload}
                        return
                    yield str(headers.get(":event-type")), payload
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._transport_error(exc) from None
        finally:
            response.release()

    async def _events(
        self, response: aiohttp.ClientResponse, kind: str
    ) -> AsyncIterator[dict[str, Any]]:
        out = ChunkEnvelope(kind, self.model)
        tool_index: dict[int, int] = {}  # content block index -> tool-call index
        async for event, data in self._messages(response):
            if event == "error":
                yield {"error": {"message": data.get("message"), "type": data.get("type")}}
                return
            if event == "contentBlockStart" and kind == "chat":
                use = (data.get("start") or {}).get("toolUse")
                if use:
                    position = tool_index.setdefault(
                        data.get("contentBlockIndex", 0), len(tool_index)
                    )
                    head = {
                        "index": position,
                        "id": use.get("toolUseId"),
                        "type": "function",
                        "function": {"name": use.get("name"), "arguments": ""},
                    }
                    yield out.piece({"tool_calls": [head]})
            elif event == "contentBlockDelta":
                delta = data.get("delta") or {}
                if delta.get("text"):
                    yield out.piece({"content": delta["text"]})
                elif "toolUse" in delta and kind == "chat":
                    position = tool_index.get(data.get("contentBlockIndex", 0), 0)
                    arguments = delta["toolUse"].get("input", "")
                    yield out.piece(
                        {"tool_calls": [{"index": position, "function": {"arguments": arguments}}]}
                    )
            elif event == "messageStop":
                yield out.piece({}, FINISH.get(data.get("stopReason") or "", "stop"))
            elif event == "metadata":
                yield out.usage(_usage(data.get("usage")))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw or []]
        url = self.url("invoke")
        if self.model.startswith("cohere."):
            payload = {"texts": texts, "input_type": "search_document"}
            answer = (await self.send(url, payload, {})).json()
            vectors, tokens = answer.get("embeddings") or [], None
        else:  # Titan: one text per call
            answers = await asyncio.gather(*(self.send(url, {"inputText": t}, {}) for t in texts))
            parsed = [a.json() for a in answers]
            vectors = [p.get("embedding") for p in parsed]
            tokens = sum(int(p.get("inputTextTokenCount") or 0) for p in parsed)
        return embeddings_answer(vectors, self.model, tokens)
