"""Embedding backends: what turns texts into unit-length vectors, and each one's cache key.

An :class:`Encoder` has a ``key`` (the ``embeddings.model`` column: a vector cached by one
backend is never served for another) and ``encode``. :func:`encoder_for` picks one from the
settings:

- ``torch`` (sentence-transformers): the key is the model name alone, as before backends
  existed, so caches filled by earlier versions stay valid. The bundled model on the CPU runs
  in numpy instead (``minilm.py``: the same vectors to float32 rounding, no torch import) unless
  ``LLMSCOPE_EMBEDDING_NUMPY`` is false;
- ``onnx`` / ``onnx-int8`` / ``onnx-int8-mixed``: the model exported once with ``torch.onnx``
  into the data directory and run by onnxruntime (``onnx_backend.py``); key ``MODEL@<backend>``;
- ``LLMSCOPE_EMBEDDING_MODEL=gateway:<endpoint>``: an embeddings endpoint of llmscope's gateway
  (``gateway_embeddings.py``); key ``gateway:<endpoint>``, whatever the backend setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from llmscope.config import Settings

GATEWAY_PREFIX = "gateway:"


class Encoder(Protocol):
    """Texts in, one unit-length float32 row per text out."""

    @property
    def key(self) -> str:
        """What the cache is keyed by: the model and the backend."""
        ...

    @property
    def backend(self) -> str:
        """What runs the model: ``torch``, ``onnx``, ``onnx-int8[-mixed]`` or ``gateway``."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class TorchEncoder:
    """sentence-transformers (the reference every other backend is measured against); on the
    CPU the bundled model runs through its numpy twin (``minilm.py``) unless ``numpy`` is
    false: measured faster at every size, and a run that uses it never imports torch."""

    backend = "torch"

    def __init__(
        self, model_name: str, batch_size: int = 64, device: str = "cpu", numpy: bool = True
    ) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        # ``cuda`` only in a Ray actor given a GPU: the key stays the model's, as the vectors
        # agree with the CPU's to float precision.
        self.device = device
        self.numpy = numpy

    @property
    def key(self) -> str:
        return self.model_name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from llmscope.analysis.embedding import BUNDLED_NAMES, load_model

        if self.numpy and self.device == "cpu" and self.model_name in BUNDLED_NAMES:
            # The same vectors to float32 rounding (tests/analysis/test_minilm.py), so the
            # same cache key, without importing torch.
            from llmscope.analysis.embedding import model_location
            from llmscope.analysis.minilm import load_minilm

            return load_minilm(model_location(self.model_name)).encode(texts)
        vectors = load_model(self.model_name, self.device).encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def encoder_for(settings: Settings) -> Encoder:
    """The encoder the settings ask for."""
    model = settings.embedding_model
    if model.startswith(GATEWAY_PREFIX):
        from llmscope.analysis.gateway_embeddings import GatewayEncoder

        return GatewayEncoder(model.removeprefix(GATEWAY_PREFIX), settings)
    if settings.embedding_backend == "torch":
        return TorchEncoder(model, settings.embed_batch_size, numpy=settings.embedding_numpy)
    from llmscope.analysis.onnx_backend import OnnxEncoder

    return OnnxEncoder(
        model,
        precision=settings.embedding_backend.removeprefix("onnx").lstrip("-") or "fp32",
        cache_dir=settings.data_dir / "onnx",
        batch_size=settings.embed_batch_size,
    )
