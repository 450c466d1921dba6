"""The ONNX backends: exported locally from the packaged weights, close to torch, cached apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmscope.analysis.embedding import load_model
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.onnx_backend import OnnxEncoder
from llmscope.config import Settings

TEXTS = [
    "How do I reset my password?",
    "My card payment was declined at the shop",
    "When will my refund arrive?",
    "I want to change the PIN of my card",
    "Is there a fee for topping up by bank transfer?",
    "a",
    "Why was I charged twice for the same purchase yesterday evening at the supermarket near "
    "my home, and how can I get the second payment back before the end of the month?",
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data") / "onnx"


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return np.asarray(load_model("all-MiniLM-L6-v2").encode(TEXTS, normalize_embeddings=True))


@pytest.mark.slow
def test_fp32_export_matches_torch(onnx_dir: Path, reference: np.ndarray) -> None:
    encoder = OnnxEncoder("all-MiniLM-L6-v2", cache_dir=onnx_dir, batch_size=3)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float((vectors * reference).sum(axis=1).min()) > 0.9999
    path = encoder.model_path()
    assert path.parent == onnx_dir and path.name.endswith("-fp32.onnx")
    assert not list(onnx_dir.glob("*.part"))  # written atomically
    # A second encoder finds the file and does not export again.
    mtime = path.stat().st_mtime_ns
    again = OnnxEncoder("all-MiniLM-L6-v2", cache_dir=onnx_dir)
    assert np.allclose(again.encode(TEXTS[:2]), vectors[:2], atol=1e-5)
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_int8_stays_close_to_torch(onnx_dir: Path, reference: np.ndarray) -> None:
    encoder = OnnxEncoder("all-MiniLM-L6-v2", precision="int8", cache_dir=onnx_dir)
    vectors = encoder.encode(TEXTS)
    cosine = (vectors * reference).sum(axis=1)
    # Per-channel int8 MatMuls: ~0.99 (naive per-tensor int8 fell to ~0.94 at the 1st percentile).
    assert float(cosine.min()) > 0.97
    # The MatMul weights shrink 4x; the token-embedding table (47 MB) stays fp32.
    int8 = encoder.model_path()
    fp32 = int8.with_name(int8.name.replace("int8", "fp32"))
    assert int8.stat().st_size < 0.7 * fp32.stat().st_size


@pytest.mark.slow
def test_int8_mixed_keeps_the_feed_forward_down_projections_fp32(
    onnx_dir: Path, reference: np.ndarray
) -> None:
    import onnx

    encoder = encoder_for(Settings(embedding_backend="onnx-int8-mixed", data_dir=onnx_dir.parent))
    vectors = encoder.encode(TEXTS)
    cosine = (vectors * reference).sum(axis=1)
    # Measured on 2,000 Banking77 texts: p1 0.994 (int8 everywhere: 0.988); the 7 texts here
    # give min ~0.99, so 0.985 fails if the down-projections are quantised after all.
    assert float(cosine.min()) > 0.985
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    graph = onnx.load(str(encoder.model_path())).graph
    fp32 = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert sum("/output/dense/" in n and "attention" not in n for n in fp32) == 6  # one a layer
    assert not any("/intermediate/dense/" in n or "/query/" in n for n in fp32)


def test_backends_have_their_own_cache_keys(tmp_path: Path) -> None:
    backends = ("torch", "onnx", "onnx-int8", "onnx-int8-mixed")
    keys = {
        backend: encoder_for(Settings(embedding_backend=backend, data_dir=tmp_path))
        for backend in backends
    }
    assert {b: e.key for b, e in keys.items()} == {
        "torch": "all-MiniLM-L6-v2",  # as before backends existed: old caches stay valid
        "onnx": "all-MiniLM-L6-v2@onnx",
        "onnx-int8": "all-MiniLM-L6-v2@onnx-int8",
        "onnx-int8-mixed": "all-MiniLM-L6-v2@onnx-int8-mixed",
    }
    assert tuple(e.backend for e in keys.values()) == backends


def test_a_model_that_is_not_a_local_sentence_transformer_is_refused(tmp_path: Path) -> None:
    encoder = OnnxEncoder(str(tmp_path), cache_dir=tmp_path / "onnx")
    with pytest.raises(ValueError, match="no modules.json"):
        encoder.encode(["hello"])
    with pytest.raises(ValueError, match="unknown onnx precision 'int4'"):
        OnnxEncoder("all-MiniLM-L6-v2", precision="int4", cache_dir=tmp_path)
    with pytest.raises(Exception, match="embedding_backend"):
        Settings(embedding_backend="tensorrt")  # type: ignore[arg-type]
