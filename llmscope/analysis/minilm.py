"""all-MiniLM-L6-v2 in numpy: the bundled model's forward pass without torch or transformers.

A cold process that embeds a few hundred texts through sentence-transformers spends more CPU
importing torch, transformers and sentence-transformers than encoding. This module runs the
same BERT (6 layers, 384 wide, 12 heads; mean pooling over the tokens, then unit length, as the
model's ``modules.json`` says) from the package's ``model.safetensors`` and ``tokenizer.json``
with numpy's BLAS, the tokenizer by ``tokenizers`` (the library transformers' fast tokenizer is
built on): nothing heavier than numpy and SciPy's ``erf`` is imported.

The vectors agree with sentence-transformers' to float32 rounding (a test holds them to it), so
they share its cache key, as GPU-computed vectors do: see ``encoders.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["MiniLM", "load_minilm"]

HEADS = 12
LAYER_NORM_EPS = 1e-12


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    out: np.ndarray = centred / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return np.asarray(0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0)))), dtype=np.float32)


class MiniLM:
    """The model's weights and tokenizer; :meth:`encode` gives unit-length float32 rows."""

    def __init__(self, directory: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.weights = load_file(str(directory / "model.safetensors"))
        config = json.loads((directory / "sentence_bert_config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(config["max_seq_length"]))
        self.layers = 1 + max(
            int(k.split(".")[2]) for k in self.weights if k.startswith("encoder.layer.")
        )
        # Linear layers as (in, out) matrices, transposed once.
        self.dense = {k: np.ascontiguousarray(v.T) for k, v in self.weights.items() if v.ndim == 2}

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # One 2-D product (BLAS), not one per batch row.
        flat = x.reshape(-1, x.shape[-1]) @ self.dense[f"{name}.weight"]
        out: np.ndarray = flat.reshape(*x.shape[:-1], -1) + self.weights[f"{name}.bias"]
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.weights
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        width = x.shape[-1]
        head = width // HEADS
        # Padding is never attended to: its scores get the most negative float32.
        masked = np.where(mask[:, None, None, :], 0.0, np.finfo(np.float32).min)
        masked = masked.astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(head))
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t: np.ndarray, *order: int) -> np.ndarray:
                # Contiguous per head: numpy's stacked matmul uses BLAS only on such blocks.
                return np.ascontiguousarray(t.reshape(batch, length, HEADS, head).transpose(order))

            q = heads(self._linear(x, f"{p}.attention.self.query"), 0, 2, 1, 3)
            k = heads(self._linear(x, f"{p}.attention.self.key"), 0, 2, 3, 1)
            v = heads(self._linear(x, f"{p}.attention.self.value"), 0, 2, 1, 3)
            scores = (q @ k) * scale + masked
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
            x = _layer_norm(
                self._linear(context, f"{p}.attention.output.dense") + x,
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = _layer_norm(
                self._linear(hidden, f"{p}.output.dense") + x,
                w[f"{p}.output.LayerNorm.weight"],
                w[f"{p}.output.LayerNorm.bias"],
            )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """One unit-length float32 row per text, in order (batched by length, so padding is
        small; a text's vector does not depend on its batch)."""
        if not texts:
            return np.zeros((0, self.weights["embeddings.LayerNorm.weight"].shape[0]), np.float32)
        encoded = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([-len(e.ids) for e in encoded], kind="stable")
        out = np.empty(
            (len(texts), self.weights["embeddings.LayerNorm.weight"].shape[0]), np.float32
        )
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            length = max(len(encoded[i].ids) for i in chosen)
            ids = np.zeros((len(chosen), length), dtype=np.int64)
            mask = np.zeros((len(chosen), length), dtype=bool)
            for row, i in enumerate(chosen):
                n = len(encoded[i].ids)
                ids[row, :n] = encoded[i].ids
                mask[row, :n] = True
            out[chosen] = self._forward(ids, mask)
        return out


@lru_cache(maxsize=1)
def load_minilm(directory: str) -> MiniLM:
    """The model in ``directory`` (the bundled package's), loaded once per process."""
    return MiniLM(Path(directory))
