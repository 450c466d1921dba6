"""The ONNX backends: the sentence-transformers model exported locally, run by onnxruntime.

``LLMSCOPE_EMBEDDING_BACKEND=onnx``, ``onnx-int8`` or ``onnx-int8-mixed``. The first use exports
the model from its installed weights with ``torch.onnx`` (nothing is downloaded) into
``<data dir>/onnx/``, with the model's own pooling and normalisation (read from its
``modules.json`` and ``1_Pooling/config.json``) inside the graph, so onnxruntime returns the
sentence vectors themselves. ``onnx-int8`` quantises the exported graph's weight matrix
multiplications to int8 with one scale per output channel (dynamic activations); the pooling
and normalisation stay fp32. ``onnx-int8-mixed`` leaves the feed-forward down-projections
(``output/dense``: their input is the GELU output, whose long tail a per-batch int8 scale
flattens) in fp32, which keeps most of the speed and halves the loss of cosine agreement
(``docs/benchmarks/analysis-speed.md``; ``benchmarks/analysis_speed.py``).
Another process that finds the file uses it; an export writes a temporary file and renames it,
so a half-written model is never loaded.

sentence-transformers' own ``backend="onnx"`` needs optimum, whose pins conflict with the
transformers that sentence-transformers 6 needs; this module needs only onnxruntime and onnx.
Texts are tokenised by the model's ``tokenizer.json`` (the same fast tokenizer
sentence-transformers uses), truncated at its ``max_seq_length``, and batched longest first.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Bump when the exported graph changes, so an old file in a data directory is not reused.
EXPORT_VERSION = 1
OPSET = 17
PRECISIONS = ("fp32", "int8", "int8-ffn", "int8-mixed")


def _quantised_nodes(precision: str, matmul_names: Sequence[str]) -> list[str]:
    """The MatMul nodes (of a BERT-style export) that ``precision`` quantises to int8.

    ``int8``: all of them (onnxruntime's dynamic quantisation leaves the attention-score
    MatMuls, which have no weight, in fp32 anyway). ``int8-ffn``: the feed-forward pair only
    (measured, not a backend: slower than ``int8-mixed`` and further from torch).
    ``int8-mixed``: all but the feed-forward down-projections.
    """

    def feed_forward_down(name: str) -> bool:
        return "/output/dense/" in name and "/attention/" not in name

    if precision == "int8-ffn":
        return [n for n in matmul_names if "/intermediate/dense/" in n or feed_forward_down(n)]
    if precision == "int8-mixed":
        return [n for n in matmul_names if not feed_forward_down(n)]
    return list(matmul_names)


class OnnxEncoder:
    """A sentence-transformers model (mean or CLS pooling) run by onnxruntime."""

    def __init__(
        self,
        model_name: str,
        *,
        precision: str = "fp32",
        cache_dir: Path,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(
                f"unknown onnx precision {precision!r}; one of {', '.join(PRECISIONS)}"
            )
        self.model_name = model_name
        self.precision = precision
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        # None: onnxruntime's own choice (one thread per physical core, spinning). A number sets
        # intra-op threads, one inter-op thread and sequential execution (the benchmark's
        # candidate; on the shared 2-core machine it was no faster than the default).
        self.threads = threads

    @property
    def backend(self) -> str:
        return "onnx" if self.precision == "fp32" else f"onnx-{self.precision}"

    @property
    def key(self) -> str:
        return f"{self.model_name}@{self.backend}"

    def model_path(self) -> Path:
        """The exported (and, for int8, quantised) model file; made on first use."""
        return exported_model(self.model_name, self.cache_dir, self.precision)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        session = _session(str(self.model_path()), self.threads)
        tokenizer = _tokenizer(self.model_name)
        wanted = {i.name for i in session.get_inputs()}
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            encoded = tokenizer.encode_batch([texts[i] for i in rows])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            vectors = session.run(None, {k: v for k, v in feed.items() if k in wanted})[0]
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("_")


def _model_dir(model_name: str) -> Path:
    from llmscope.analysis.embedding import model_location

    path = Path(model_location(model_name))
    if not (path / "modules.json").is_file():
        raise ValueError(
            f"the onnx backends export a sentence-transformers model from a local directory; "
            f"{model_name!r} is not one (no modules.json)"
        )
    return path


def _pipeline(model_dir: Path) -> tuple[str, bool, int]:
    """The model's pooling ('mean' or 'cls'), whether it normalises, and its max_seq_length."""
    modules = json.loads((model_dir / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise ValueError(f"the onnx backends support Transformer, Pooling[, Normalize]: {kinds}")
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
    mode = "mean" if pooling.get("pooling_mode_mean_tokens") else "cls"
    if mode == "cls" and not pooling.get("pooling_mode_cls_token"):
        raise ValueError(f"the onnx backends support mean or CLS pooling, not {pooling}")
    config_file = model_dir / "sentence_bert_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return mode, "Normalize" in kinds, int(config.get("max_seq_length") or 512)


@lru_cache(maxsize=4)
def _tokenizer(model_name: str) -> Any:
    from tokenizers import Tokenizer

    model_dir = _model_dir(model_name)
    _, _, max_length = _pipeline(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()
    return tokenizer


@lru_cache(maxsize=8)  # one per model file and thread setting (the benchmark holds three)
def _session(path: str, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def exported_model(model_name: str, cache_dir: Path, precision: str = "fp32") -> Path:
    """``<cache_dir>/<model>-v<N>-<precision>.onnx``, exported (and quantised) on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(model_name)}-v{EXPORT_VERSION}"
    fp32 = cache_dir / f"{stem}-fp32.onnx"
    if not fp32.is_file():
        _write_atomically(fp32, lambda tmp: _export(model_name, tmp))
    if precision == "fp32":
        return fp32
    int8 = cache_dir / f"{stem}-{precision}.onnx"
    if not int8.is_file():
        _write_atomically(int8, lambda tmp: _quantize(fp32, tmp, precision))
    return int8


def _write_atomically(target: Path, write: Any) -> None:
    handle, name = tempfile.mkstemp(dir=target.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        write(Path(name))
        os.replace(name, target)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def _export(model_name: str, target: Path) -> None:
    """Export the transformer with its pooling and normalisation as one graph."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    model_dir = _model_dir(model_name)
    mode, normalise, _ = _pipeline(model_dir)
    transformer = AutoModel.from_pretrained(str(model_dir)).eval()

    class SentenceVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden: torch.Tensor = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if mode == "cls":
                vectors = hidden[:, 0]
            else:
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            if normalise:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            return vectors

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    # The tracer warns about Python control flow it records as constants (the shapes stay
    # dynamic through dynamic_axes); a caller that turns warnings into errors must not fail.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceVectors(),
            example,
            str(target),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={
                **{n: {0: "batch", 1: "tokens"} for n in names},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(source: Path, target: Path, precision: str) -> None:
    """int8 weights per output channel for the precision's MatMuls; activations per batch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    matmuls = [n.name for n in graph.node if n.op_type == "MatMul"]
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=_quantised_nodes(precision, matmuls),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
