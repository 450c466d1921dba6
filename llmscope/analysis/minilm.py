"""all-MiniLM-L6-v2 in numpy: the bundled model's forward pass without torch or transformers.

A cold process that embeds a few hundred texts through sentence-transformers spends more CPU
importing torch, transformers and sentence-transformers than encoding. This module runs the
same BERT (6 layers, 384 wide, 12 heads; mean pooling over the tokens, then unit length, as the
model's ``modules.json`` says) from the package's ``model.safetensors`` and ``tokenizer.json``
with numpy's BLAS, the tokenizer by ``tokenizers`` (the library transformers' fast tokenizer is
built on): nothing heavier than numpy and ``threadpoolctl`` is imported.

What makes it fast, each measured on 2 cores (``benchmarks/analysis_small.py``):

- float32 throughout, and GELU's ``erf`` as a rational function evaluated in float32 in place
  (SciPy's ``erf`` cost ~110 ns an element, more than all the matrix products together);
- one matrix product for the query, key and value projections;
- batches of about ``BATCH_TOKENS`` tokens (longest texts first, so padding is small), small
  enough that a layer's activations stay in the core's cache;
- batches split across threads, BLAS limited to one thread each: numpy releases the GIL in its
  loops and in BLAS, so every core works on its own batch instead of sharing small products.

The vectors agree with sentence-transformers' to float32 rounding (a test holds them to it), so
they share its cache key, as GPU-computed vectors do: see ``encoders.py``. A text's vector
depends on its batch only by float32 rounding, and on the number of threads not at all (to the
bit: each batch's products run on one BLAS thread, whichever thread runs it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["BATCH_TOKENS", "MiniLM", "load_minilm"]

HEADS = 12
LAYER_NORM_EPS = np.float32(1e-12)
# Tokens (padding included) per batch: 128 to 512 are within a few percent of each other.
BATCH_TOKENS = 256
# One encode at a time per process: each uses every core already, and the BLAS thread limit is
# process-wide (two overlapping limits could restore each other's).
_ENCODING = threading.Lock()
# Elements of a GELU input handled at a time.
GELU_CHUNK = 65536

# erf(z) ~= z * P(z^2) / Q(z^2) for |z| <= 4 (beyond, erf is 1 to float32 precision): a rational
# least-squares fit on 25,000 points of [0, 4], reweighted towards its largest errors until
# near minimax (float64 error 2e-8; evaluated in float32, 4e-7 at most, a few float32 steps).
_ERF_P = (
    1.1283789759441802e00,
    1.9628161828846583e-01,
    5.3471741251690512e-02,
    4.0050152911487438e-03,
    2.8806708600688085e-04,
    1.9745233494789605e-06,
)
_ERF_Q = (
    1.0,
    5.0728120830432022e-01,
    1.1648986647695943e-01,
    1.5447188136635254e-02,
    1.2166811329859381e-03,
    3.7478998785167036e-05,
)
_ERF_LIMIT = 4.0
# GELU(x) = x * (1/2 + erf(x / sqrt 2) / 2): the same fit in x, with z = x / sqrt(2) and the
# halving folded into the numerator, so 0.5 * erf(x / sqrt 2) = x * _GELU_P(x^2) / _GELU_Q(x^2).
_GELU_P = tuple(np.float32(a / 2**i / np.sqrt(2.0) / 2) for i, a in enumerate(_ERF_P))
_GELU_Q = tuple(np.float32(b / 2**i) for i, b in enumerate(_ERF_Q))
_GELU_LIMIT = np.float32(_ERF_LIMIT * np.sqrt(2.0))


def _horner(t: np.ndarray, coefficients: Sequence[np.float32]) -> np.ndarray:
    out = t * coefficients[-1]
    out += coefficients[-2]
    for c in coefficients[-3::-1]:
        out *= t
        out += c
    return out


def _gelu(x: np.ndarray) -> None:
    """GELU (the erf form BERT uses) of the rows of ``x`` in place, in float32."""
    # A few rows at a time: the temporaries stay in the core's cache (twice as fast as whole).
    rows = max(1, GELU_CHUNK // x.shape[1])
    for start in range(0, x.shape[0], rows):
        _gelu_block(x[start : start + rows])


def _gelu_block(x: np.ndarray) -> None:
    z = np.clip(x, -_GELU_LIMIT, _GELU_LIMIT)
    t = z * z
    half_erf = _horner(t, _GELU_P)
    half_erf *= z
    half_erf /= _horner(t, _GELU_Q)
    half_erf += np.float32(0.5)
    x *= half_erf


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> None:
    """Layer normalisation of the rows of ``x`` in place."""
    x -= x.mean(axis=1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x)[:, None]
    variance /= np.float32(x.shape[1])
    variance += LAYER_NORM_EPS
    np.sqrt(variance, out=variance)
    x /= variance
    x *= weight
    x += bias


def _row_max(x: np.ndarray) -> np.ndarray:
    """The maximum of each last-axis row of ``x``, keeping dims.

    Reducing a short contiguous axis calls numpy's inner loop once per row (~10x slower);
    transposed, it is an elementwise maximum of whole rows.
    """
    flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)
    out: np.ndarray = flat.max(axis=0).reshape(*x.shape[:-1], 1)
    return out


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (width, 3 * width): query, key and value side by side
    qkv_bias: np.ndarray
    attention_out: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    intermediate: np.ndarray
    intermediate_bias: np.ndarray
    output: np.ndarray
    output_bias: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]


def _batches(lengths: Sequence[int], budget: int) -> Iterator[list[int]]:
    """Indices of the texts in batches of at most ``budget`` padded tokens (one text at
    least), longest first, so each batch pads to lengths close to its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        rows = max(1, budget // max(longest, 1))
        yield order[start : start + rows]
        start += rows


def _cores() -> int:
    """The threads to run on: ``OMP_NUM_THREADS`` when set (Ray sets it for its workers, as
    people do to share a machine), else the cores this process may run on."""
    asked = os.environ.get("OMP_NUM_THREADS", "")
    if asked.isdigit() and int(asked) > 0:
        return int(asked)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class MiniLM:
    """The model's weights and tokenizer; :meth:`encode` gives unit-length float32 rows."""

    def __init__(self, directory: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = load_file(str(directory / "model.safetensors"))
        config = json.loads((directory / "sentence_bert_config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(config["max_seq_length"]))

        def f32(name: str) -> np.ndarray:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        def dense(name: str) -> np.ndarray:  # a linear layer as an (in, out) matrix
            return np.ascontiguousarray(weights[f"{name}.weight"].T, dtype=np.float32)

        self.word = f32("embeddings.word_embeddings.weight")
        self.position = f32("embeddings.position_embeddings.weight")
        self.token_type = f32("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.width = self.word.shape[1]
        count = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
        self.layers: list[_Layer] = []
        for i in range(count):
            p = f"encoder.layer.{i}"
            qkv = [f"{p}.attention.self.{part}" for part in ("query", "key", "value")]
            self.layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(np.hstack([dense(n) for n in qkv])),
                    qkv_bias=np.concatenate([f32(f"{n}.bias") for n in qkv]),
                    attention_out=dense(f"{p}.attention.output.dense"),
                    attention_out_bias=f32(f"{p}.attention.output.dense.bias"),
                    attention_norm=(
                        f32(f"{p}.attention.output.LayerNorm.weight"),
                        f32(f"{p}.attention.output.LayerNorm.bias"),
                    ),
                    intermediate=dense(f"{p}.intermediate.dense"),
                    intermediate_bias=f32(f"{p}.intermediate.dense.bias"),
                    output=dense(f"{p}.output.dense"),
                    output_bias=f32(f"{p}.output.dense.bias"),
                    output_norm=(
                        f32(f"{p}.output.LayerNorm.weight"),
                        f32(f"{p}.output.LayerNorm.bias"),
                    ),
                )
            )

    def _attention(self, layer: _Layer, x: np.ndarray, mask_add: np.ndarray) -> np.ndarray:
        batch, length = mask_add.shape[0], mask_add.shape[-1]
        head = self.width // HEADS
        qkv = x @ layer.qkv
        qkv += layer.qkv_bias
        # (part, batch, head, token, dim): contiguous per head, so the stacked products use BLAS.
        parts = np.ascontiguousarray(
            qkv.reshape(batch, length, 3, HEADS, head).transpose(2, 0, 3, 1, 4)
        )
        q, k, v = parts[0], parts[1], parts[2]
        scores = q @ k.swapaxes(-1, -2)
        scores *= np.float32(1.0 / np.sqrt(head))
        scores += mask_add
        scores -= _row_max(scores)
        np.exp(scores, out=scores)
        # A product with ones sums the short rows ~10x faster than ``sum(axis=-1)``.
        scores /= scores @ np.ones((length, 1), np.float32)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.width)
        out: np.ndarray = context @ layer.attention_out
        out += layer.attention_out_bias
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        embedded = self.word[ids]
        embedded += self.position[:length] + self.token_type
        x = embedded.reshape(batch * length, self.width)
        _layer_norm(x, *self.embedding_norm)
        # Padding is never attended to: its scores get the most negative float32.
        mask_add = np.where(mask, np.float32(0.0), np.finfo(np.float32).min).astype(np.float32)
        mask_add = mask_add[:, None, None, :]
        for layer in self.layers:
            attended = self._attention(layer, x, mask_add)
            attended += x
            _layer_norm(attended, *layer.attention_norm)
            hidden = attended @ layer.intermediate
            hidden += layer.intermediate_bias
            _gelu(hidden)
            x = hidden @ layer.output
            x += layer.output_bias
            x += attended
            _layer_norm(x, *layer.output_norm)
        weights = mask.astype(np.float32)[:, :, None]
        pooled: np.ndarray = (x.reshape(batch, length, self.width) * weights).sum(axis=1)
        pooled /= np.maximum(weights.sum(axis=1), np.float32(1e-9))
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_tokens: int = BATCH_TOKENS,
        threads: int | None = None,
    ) -> np.ndarray:
        """One unit-length float32 row per text, in order.

        Batches of about ``batch_tokens`` padded tokens run on ``threads`` threads (default:
        ``OMP_NUM_THREADS``, else the cores this process may use), BLAS on one thread each
        while this runs.
        """
        out = np.empty((len(texts), self.width), np.float32)
        if not texts:
            return out
        encoded = self.tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encoded]

        def run(chosen: list[int]) -> None:
            length = lengths[chosen[0]]
            ids = np.zeros((len(chosen), length), dtype=np.int64)
            mask = np.zeros((len(chosen), length), dtype=bool)
            for row, i in enumerate(chosen):
                ids[row, : lengths[i]] = encoded[i].ids
                mask[row, : lengths[i]] = True
            out[chosen] = self._forward(ids, mask)

        from threadpoolctl import threadpool_limits

        batches = list(_batches(lengths, batch_tokens))
        workers = max(1, min(threads or _cores(), len(batches)))
        # One BLAS thread per batch, whatever ``threads`` is: the products (and so the vectors)
        # are then the same however many threads run them.
        with _ENCODING, threadpool_limits(limits=1, user_api="blas"):
            if workers == 1:
                for chosen in batches:
                    run(chosen)
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="minilm") as pool:
                    list(pool.map(run, batches))
        return out


@lru_cache(maxsize=1)
def load_minilm(directory: str) -> MiniLM:
    """The model in ``directory`` (the bundled package's), loaded once per process."""
    return MiniLM(Path(directory))
