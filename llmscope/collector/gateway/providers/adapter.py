"""Translation kept apart from transport, for providers whose API is not OpenAI's.

:class:`Provider` (``base.py``) owns transport: pooled HTTP, signing, retries, errors, SSE. A
:class:`TranslatingProvider` adds the unified interface's chat and completions on top of two
methods a subclass writes, both on typed payloads (``payloads.py``): :meth:`answer` turns a
:class:`RequestPayload` into the provider's request, sends it and reads the reply back as a
:class:`ResponsePayload`; :meth:`stream` opens the provider's stream (so a refusal is raised
before the gateway answers) and returns its events re-told as chunks of a
:class:`ChunkEnvelope`. The gateway, the judge and replays keep calling ``chat(body)`` and
friends with OpenAI-shaped dicts, as they do for providers that pass OpenAI's answers through.

Why the types stop here rather than at the gateway's call: an OpenAI-compatible provider's
answer is relayed as it came (``system_fingerprint``, ``logprobs``, ``refusal``, whatever
OpenAI adds next), which a typed answer would either drop or have to carry untyped anyway;
the dict at that edge is OpenAI's documented shape, and the typed payloads sit where a foreign
API is read and written, as MLflow's ``ProviderAdapter`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llmscope.collector.gateway.providers.base import Provider
from llmscope.collector.gateway.providers.payloads import Kind, RequestPayload, ResponsePayload


class TranslatingProvider(Provider):
    """A provider that translates: subclasses write :meth:`answer` and :meth:`stream`."""

    async def answer(self, request: RequestPayload) -> ResponsePayload:
        """One whole call (chat or completions, as ``request.kind`` says)."""
        raise self._unsupported(request.kind)

    async def stream(self, request: RequestPayload) -> AsyncIterator[dict[str, Any]]:
        """Open one streamed call; its chunks (and a final usage chunk) as an iterator."""
        raise self._unsupported(f"streaming {request.kind}")

    async def _whole(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        return (await self.answer(RequestPayload(kind, body))).wire()

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._whole("chat", body)

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._whole("completions", body)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return await self.stream(RequestPayload("chat", body))

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return await self.stream(RequestPayload("completions", body))
