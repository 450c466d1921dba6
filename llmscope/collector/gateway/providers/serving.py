"""Self-hosted model servers: Hugging Face TGI and MLflow model serving, as MLflow calls them.

``huggingface-text-generation-inference`` (``hf_server_url``): completions through TGI's
``/generate`` (``{"inputs", "parameters"}``; tokens from ``details``) and ``/generate_stream``;
chat through TGI's OpenAI-compatible Messages API (``/v1/chat/completions``), tools included.
No embeddings (TGI serves none; the config refuses them).

``mlflow-model-serving`` (``model_server_url``): ``POST /invocations`` with
``{"inputs": [...], "params": {...}}`` and ``{"predictions": [...]}`` back, as MLflow's gateway
does: completions and embeddings take every input, chat the single message's text (MLflow's
rule: one message per call). No streaming (the server has none).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.http import HttpPool
from llmscope.collector.gateway.providers.base import (
    Provider,
    ProviderError,
    embeddings_answer,
    renamed,
    stop_sequences,
)

PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "stop", "n", "seed")


def _bad(message: str) -> ProviderError:
    return ProviderError(400, {"error": {"message": message, "type": "invalid_request_error"}})


class TGIProvider(Provider):
    name = "huggingface-text-generation-inference"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        self.base = str(self.config["hf_server_url"]).rstrip("/")

    def _generate(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise _bad("prompt: TGI takes one prompt per call")
        parameters: dict[str, Any] = {"details": True, "decoder_input_details": True}
        parameters |= renamed(
            body,
            (("max_tokens", "max_new_tokens"), ("top_p", "top_p"), ("top_k", "top_k"),
             ("seed", "seed")),
        )  # fmt: skip
        if body.get("temperature") is not None:
            # TGI refuses 0: the smallest it takes stands for greedy decoding
            parameters["temperature"] = max(float(body["temperature"]), 1e-3)
        if stop := stop_sequences(body):
            parameters["stop"] = stop
        return {"inputs": prompt, "parameters": parameters}

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = (await self.send(f"{self.base}/generate", self._generate(body), {})).json()
        details = answer.get("details") or {}
        used = len(details.get("prefill") or [])
        made = int(details.get("generated_tokens") or 0)
        reason = details.get("finish_reason")
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "text": answer.get("generated_text", ""),
                    "finish_reason": "length" if reason == "length" else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": used,
                "completion_tokens": made,
                "total_tokens": used + made,
            },
        }

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        response = await self.send(
            f"{self.base}/generate_stream", self._generate(body), {}, stream=True
        )
        return self._tokens(response)

    async def _tokens(self, response: Any) -> AsyncIterator[dict[str, Any]]:
        base = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model,
        }
        made = 0
        async for _event, data in self.sse_data(response):
            if not isinstance(data, dict):
                continue
            if "error" in data:
                yield {"error": {"message": data["error"], "type": data.get("error_type")}}
                return
            token = data.get("token") or {}
            if token.get("special"):
                continue
            made += 1
            details = data.get("details") or {}
            finish = None
            if details:
                finish = "length" if details.get("finish_reason") == "length" else "stop"
                made = int(details.get("generated_tokens") or made)
            choice = {"index": 0, "text": token.get("text", ""), "finish_reason": finish}
            yield {**base, "choices": [choice]}
        usage = {"prompt_tokens": None, "completion_tokens": made, "total_tokens": None}
        yield {**base, "choices": [], "usage": usage}

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = {**body, "model": self.model, "stream": False}
        payload.pop("stream_options", None)
        answer: dict[str, Any] = (
            await self.send(f"{self.base}/v1/chat/completions", payload, {})
        ).json()
        return answer

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = {
            **body,
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response = await self.send(f"{self.base}/v1/chat/completions", payload, {}, stream=True)
        return self._passthrough(response)

    async def _passthrough(self, response: Any) -> AsyncIterator[dict[str, Any]]:
        async for _event, data in self.sse_data(response):
            if isinstance(data, dict):
                yield data


class MlflowServingProvider(Provider):
    name = "mlflow-model-serving"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        self.url = str(self.config["model_server_url"]).rstrip("/") + "/invocations"

    async def _invoke(self, inputs: list[Any], body: dict[str, Any]) -> list[Any]:
        params = {k: body[k] for k in PARAMS if body.get(k) is not None}
        payload: dict[str, Any] = {"inputs": inputs}
        if params:
            payload["params"] = params
        answer = (await self.send(self.url, payload, {})).json()
        predictions = answer.get("predictions") if isinstance(answer, dict) else answer
        if isinstance(predictions, dict):  # {"choices": [...]} or one named output
            predictions = predictions.get("choices") or next(iter(predictions.values()), [])
        if not isinstance(predictions, list):
            raise ProviderError(
                502,
                {"error": {"message": "the model server answered without predictions"}},
            )
        return predictions

    def _answer(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": f"{kind}-{uuid.uuid4().hex}",
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": choices,
            "usage": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
        }

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        inputs = prompt if isinstance(prompt, list) else [prompt]
        texts = await self._invoke(inputs, body)
        return self._answer(
            "completions",
            [{"index": i, "text": str(t), "finish_reason": None} for i, t in enumerate(texts)],
        )

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        if len(messages) != 1:
            raise _bad(
                f"MLflow chat models take one message per call; this request has {len(messages)}"
            )
        texts = await self._invoke([messages[0].get("content")], body)
        return self._answer(
            "chat",
            [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": str(t)},
                    "finish_reason": None,
                }
                for i, t in enumerate(texts)
            ],
        )

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        vectors = await self._invoke(inputs, {})
        if vectors and all(isinstance(v, int | float) for v in vectors):
            vectors = [vectors]  # one input answered with one flat vector
        return embeddings_answer(vectors, self.model, None)
