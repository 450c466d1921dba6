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

from collections.abc import AsyncIterator
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

PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "stop", "n", "seed")


def _bad(message: str) -> ProviderError:
    return ProviderError(400, {"error": {"message": message, "type": "invalid_request_error"}})


class TGIProvider(TranslatingProvider):
    name = "huggingface-text-generation-inference"

    def __init__(self, endpoint: Endpoint, http: HttpPool) -> None:
        super().__init__(endpoint, http)
        self.base = str(self.config["hf_server_url"]).rstrip("/")

    def _generate(self, request: RequestPayload) -> dict[str, Any]:
        prompt = request.get("prompt")
        if not isinstance(prompt, str):
            raise _bad("prompt: TGI takes one prompt per call")
        parameters: dict[str, Any] = {"details": True, "decoder_input_details": True}
        parameters |= request.renamed(
            (("max_tokens", "max_new_tokens"), ("top_p", "top_p"), ("top_k", "top_k"),
             ("seed", "seed")),
        )  # fmt: skip
        if request.get("temperature") is not None:
            # TGI refuses 0: the smallest it takes stands for greedy decoding
            parameters["temperature"] = max(float(request.get("temperature")), 1e-3)
        if stop := request.stop:
            parameters["stop"] = stop
        return {"inputs": prompt, "parameters": parameters}

    # chat() and chat_stream() pass OpenAI's shape through: these two see completions only
    async def answer(self, request: RequestPayload) -> ResponsePayload:
        answer = (await self.send(f"{self.base}/generate", self._generate(request), {})).json()
        details = answer.get("details") or {}
        finish = "length" if details.get("finish_reason") == "length" else "stop"
        return ResponsePayload(
            "completions",
            self.model,
            [Choice(answer.get("generated_text", ""), finish_reason=finish)],
            Usage.of(len(details.get("prefill") or []), int(details.get("generated_tokens") or 0)),
        )

    async def stream(self, request: RequestPayload) -> AsyncIterator[dict[str, Any]]:
        response = await self.send(
            f"{self.base}/generate_stream", self._generate(request), {}, stream=True
        )
        return self._tokens(response)

    async def _tokens(self, response: Any) -> AsyncIterator[dict[str, Any]]:
        out = ChunkEnvelope("completions", self.model)
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
            yield out.piece({"content": token.get("text", "")}, finish)
        yield out.usage(Usage(completion_tokens=made))

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


class MlflowServingProvider(TranslatingProvider):
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

    async def answer(self, request: RequestPayload) -> ResponsePayload:
        if request.kind == "chat":
            messages = request.get("messages") or []
            if len(messages) != 1:
                raise _bad(
                    "MLflow chat models take one message per call; "
                    f"this request has {len(messages)}"
                )
            inputs = [messages[0].get("content")]
        else:
            prompt = request.get("prompt")
            inputs = prompt if isinstance(prompt, list) else [prompt]
        texts = await self._invoke(inputs, request.body)
        choices = [Choice(str(t), index=i) for i, t in enumerate(texts)]
        return ResponsePayload(request.kind, self.model, choices, Usage())

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        vectors = await self._invoke(inputs, {})
        if vectors and all(isinstance(v, int | float) for v in vectors):
            vectors = [vectors]  # one input answered with one flat vector
        return embeddings_answer(vectors, self.model, None)
