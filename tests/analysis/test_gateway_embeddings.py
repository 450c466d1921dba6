"""Embeddings through the gateway, against a local server speaking OpenAI's embeddings format."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from llmscope.analysis import gateway_embeddings
from llmscope.analysis.embedding import embed_texts
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.gateway_embeddings import EmbeddingBudgetSpent, GatewayEncoder
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from tests.analysis.http_fakes import _QuietHandler, _serving


@dataclass
class FakeEmbeddings:
    url: str
    failures: list[int]  # statuses to answer first, one per request
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b - 128.0 for b in digest[:8]]  # not unit length: the encoder normalises


@contextmanager
def fake_embeddings(failures: list[int] | None = None) -> Iterator[FakeEmbeddings]:
    state = FakeEmbeddings("", list(failures or []))

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if state.failures:
                self.send_response(state.failures.pop(0))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = [
                {"object": "embedding", "index": i, "embedding": _vector(t)}
                for i, t in reversed(list(enumerate(body["input"])))  # any order: sorted by index
            ]
            payload = {"object": "list", "data": data, "model": body["model"]}
            raw = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    with _serving(Handler) as url:
        state.url = url
        yield state


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_embeddings, "BACKOFF_S", 0.01)


def _settings(url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        embedding_model="gateway:multilingual",
        collector_url=url,
        collector_api_key="sk-test",
        embed_batch_size=3,
        **extra,
    )


def test_batched_internal_calls_fill_the_cache(tmp_path: Path) -> None:
    texts = ["返品の送料は誰が負担しますか", "How do I reset my password?", "a", "b", "c", "d", "e"]
    with fake_embeddings(failures=[503, 429]) as fake:
        settings = _settings(fake.url, tmp_path)
        encoder = encoder_for(settings)
        assert isinstance(encoder, GatewayEncoder) and encoder.key == "gateway:multilingual"
        engine = make_engine(settings.database_url)
        upgrade(engine)
        with Session(engine) as session:
            vectors = embed_texts(session, texts, encoder=encoder, progress=False)
            again = embed_texts(session, texts, encoder=encoder_for(settings), progress=False)
        engine.dispose()
    # 2 retried failures, then 3 batches of at most 3; the second pass is all cached.
    assert len(fake.requests) == 5
    sizes = [len(body["input"]) for _, body in fake.requests[2:]]
    assert sizes == [3, 3, 1]
    for headers, body in fake.requests:
        assert body["model"] == "multilingual"
        assert headers["x-llmscope-internal"] == "true"
        assert headers["authorization"] == "Bearer sk-test"
    expected = np.array([_vector(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)
    assert np.allclose(again, vectors)


def test_a_client_error_is_not_retried_and_names_the_endpoint(tmp_path: Path) -> None:
    with fake_embeddings(failures=[404]) as fake:
        encoder = encoder_for(_settings(fake.url, tmp_path))
        with pytest.raises(RuntimeError, match="'multilingual'.*HTTP 404"):
            encoder.encode(["hello"])
    assert len(fake.requests) == 1


def test_the_budget_stops_the_work(tmp_path: Path) -> None:
    with fake_embeddings() as fake:
        encoder = encoder_for(_settings(fake.url, tmp_path, embedding_gateway_max_tokens=20))
        encoder.encode(["x" * 20, "y" * 20])  # 10 + 2 estimated tokens
        with pytest.raises(EmbeddingBudgetSpent, match="budget of 20 tokens"):
            encoder.encode(["z" * 40])
    assert len(fake.requests) == 1
