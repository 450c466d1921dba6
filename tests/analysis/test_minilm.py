"""The bundled model in numpy agrees with sentence-transformers, so the two share a cache."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from llmscope.analysis.embedding import load_model, model_location
from llmscope.analysis.minilm import _gelu, load_minilm

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
    "card declined twice at the same shop, why?",
    "can I change the delivery address after paying",
    "my account is locked after three wrong codes",
    "is there a fee for paying in another currency",
]


def test_numpy_vectors_agree_with_sentence_transformers() -> None:
    reference = load_model("all-MiniLM-L6-v2").encode(
        TEXTS, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )
    light = load_minilm(model_location("all-MiniLM-L6-v2")).encode(TEXTS)
    assert light.dtype == np.float32 and light.shape == reference.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(light, axis=1), 1.0, atol=1e-6)
    # float32 rounding apart (measured: at most 2.1e-7 per coordinate)
    assert np.abs(light - reference).max() <= 3e-7
    assert float((light * reference).sum(axis=1).min()) >= 1 - 1e-6


def test_a_vector_does_not_depend_on_its_batch() -> None:
    model = load_minilm(model_location("all-MiniLM-L6-v2"))
    together = model.encode(TEXTS, batch_tokens=40)
    alone = np.vstack([model.encode([t]) for t in TEXTS])
    assert np.abs(together - alone).max() <= 1e-6


@pytest.mark.parametrize("batch_tokens", [16, 256])
def test_the_vectors_do_not_depend_on_the_threads(batch_tokens: int) -> None:
    """Each batch runs on one BLAS thread whoever runs it: identical to the bit."""
    model = load_minilm(model_location("all-MiniLM-L6-v2"))
    texts = [f"({i}) {t}" for i in range(4) for t in TEXTS]
    one = model.encode(texts, batch_tokens=batch_tokens, threads=1)
    two = model.encode(texts, batch_tokens=batch_tokens, threads=2)
    three = model.encode(texts, batch_tokens=batch_tokens, threads=3)
    assert np.array_equal(one, two) and np.array_equal(one, three)
    assert len({row.tobytes() for row in one}) == len(texts)


def test_gelu_is_erf_gelu_to_float32_rounding() -> None:
    x = np.concatenate(
        [np.linspace(-12, 12, 240_001), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 1e4]]
    ).astype(np.float32)
    exact = 0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / np.sqrt(2.0)))
    got = x.reshape(-1, 8).copy()  # rows, as the model's hidden states come
    _gelu(got)
    got = got.ravel()
    assert got.dtype == np.float32
    # a few float32 steps of the larger of |x| and 1 (the erf's own rounding, times x)
    steps = np.abs(got - exact) / np.spacing(np.maximum(np.abs(x), np.float32(1)))
    assert steps.max() <= 4  # measured: 3.1
    assert np.all(got[x == 0] == 0) and got[-1] == np.float32(1e4)
    assert np.all(got[x <= -6] <= 0) and np.all(got[x <= -6] > -1e-7)
