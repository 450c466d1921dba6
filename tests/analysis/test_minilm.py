"""The bundled model in numpy agrees with sentence-transformers, so the two share a cache."""

from __future__ import annotations

import numpy as np

from llmscope.analysis.embedding import load_model, model_location
from llmscope.analysis.minilm import load_minilm

TEXTS = [
    "how do I reset my password?",
    "I want a refund for my order",
    "",
    "a",
    "Quick question: where is my package right now",
    "Ünïcödé: café, naïve, 日本語のテスト、返品送料はいくらですか",
    # Longer than the model's 256 tokens: truncated the same way.
    " ".join(f"word{i} refund shipping" for i in range(200)),
    "the courier says the parcel was delivered but I have nothing",
]


def test_numpy_vectors_agree_with_sentence_transformers() -> None:
    reference = load_model("all-MiniLM-L6-v2").encode(
        TEXTS, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )
    light = load_minilm(model_location("all-MiniLM-L6-v2")).encode(TEXTS)
    assert light.dtype == np.float32 and light.shape == reference.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(light, axis=1), 1.0, atol=1e-6)
    # float32 rounding apart (measured: at most 2e-7 per coordinate)
    assert np.abs(light - reference).max() <= 1e-5
    assert float((light * reference).sum(axis=1).min()) >= 1 - 1e-6


def test_a_vector_does_not_depend_on_its_batch() -> None:
    model = load_minilm(model_location("all-MiniLM-L6-v2"))
    together = model.encode(TEXTS, batch_size=3)
    alone = np.vstack([model.encode([t]) for t in TEXTS])
    assert np.abs(together - alone).max() <= 1e-6
