"""Embeddings through llmscope's gateway: ``LLMSCOPE_EMBEDDING_MODEL=gateway:<endpoint>``.

Any embeddings endpoint the gateway serves (OpenAI, Cohere, Gemini, a local server...) embeds
the analysis' texts, which is how multilingual traffic gets a multilingual model. Requests go
to ``LLMSCOPE_COLLECTOR_URL`` + ``/v1/embeddings`` (OpenAI's wire format, ``model`` = the
endpoint name), with ``LLMSCOPE_COLLECTOR_API_KEY`` as the bearer key when set, and are:

- **batched**: ``LLMSCOPE_EMBED_BATCH_SIZE`` texts per request;
- **retried**: up to ``ATTEMPTS`` tries on 429, 5xx and connection errors, waiting
  ``BACKOFF_S`` doubled each time (``Retry-After`` when the gateway sends one);
- **budgeted**: ``LLMSCOPE_EMBEDDING_GATEWAY_MAX_TOKENS`` (estimated as characters / 4 before
  each request) per encoder, i.e. per run or per ``llmscope embed`` pass; past it,
  :class:`EmbeddingBudgetSpent` stops the work, and what was embedded so far stays cached;
- **recorded as internal**: ``X-LLMScope-Internal: true``, so the gateway records the calls
  and the analysis never clusters them.

The cache key is ``gateway:<endpoint>``; vectors are normalised to unit length here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
import numpy as np

from llmscope.config import Settings, revealed

ATTEMPTS = 4
BACKOFF_S = 0.5
RETRY_STATUS = {429, 500, 502, 503, 504}


class EmbeddingBudgetSpent(RuntimeError):
    """The gateway embedding token budget of this run is spent."""


class GatewayEncoder:
    """Texts embedded by an embeddings endpoint of llmscope's gateway."""

    backend = "gateway"

    def __init__(self, endpoint: str, settings: Settings) -> None:
        if not endpoint:
            raise ValueError("LLMSCOPE_EMBEDDING_MODEL=gateway:<endpoint> needs an endpoint name")
        self.endpoint = endpoint
        self.url = settings.collector_url.rstrip("/") + "/v1/embeddings"
        self.batch_size = settings.embed_batch_size
        self.budget = settings.embedding_gateway_max_tokens
        self.spent = 0
        self.headers = {"X-LLMScope-Internal": "true"}
        key = revealed(settings.collector_api_key)
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    @property
    def key(self) -> str:
        return f"gateway:{self.endpoint}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        with httpx.Client(timeout=60.0, headers=self.headers) as client:
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                estimate = sum(len(t) for t in batch) // 4 + len(batch)
                if self.spent + estimate > self.budget:
                    raise EmbeddingBudgetSpent(
                        f"gateway embedding budget of {self.budget} tokens spent "
                        f"({self.spent} used); raise LLMSCOPE_EMBEDDING_GATEWAY_MAX_TOKENS"
                    )
                self.spent += estimate
                rows.append(self._request(client, batch))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.vstack(rows).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return unit

    def _request(self, client: httpx.Client, batch: list[str]) -> np.ndarray:
        wait = BACKOFF_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = client.post(self.url, json={"model": self.endpoint, "input": batch})
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise RuntimeError(f"gateway embeddings at {self.url}: {exc}") from exc
            else:
                if response.status_code == 200:
                    data = sorted(response.json()["data"], key=lambda d: d["index"])
                    if len(data) != len(batch):
                        raise RuntimeError(
                            f"gateway embeddings: {len(data)} vectors for {len(batch)} texts"
                        )
                    return np.array([d["embedding"] for d in data], dtype=np.float32)
                if response.status_code not in RETRY_STATUS or attempt == ATTEMPTS:
                    raise RuntimeError(
                        f"gateway embeddings at {self.url} (endpoint {self.endpoint!r}): "
                        f"HTTP {response.status_code} {response.text[:200]}"
                    )
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            time.sleep(wait)
            wait *= 2
        raise AssertionError("unreachable")
