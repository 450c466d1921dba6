"""What the CLINC150 quality benchmarks share: a seeded choice of intents and their training
queries, and the queries' embeddings (cached in an .npy file across runs when asked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmscope.analysis.embedding import load_model


def clinc_intents(
    data_dir: str | Path, intents: int, per_intent: int, seed: int
) -> tuple[list[str], list[str], np.ndarray]:
    """``(chosen intents, texts, intent number of each text)``: ``intents`` intents drawn with
    ``seed``, the first ``per_intent`` training queries of each."""
    data = json.loads((Path(data_dir) / "clinc150" / "data_full.json").read_text())
    pool: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        pool.setdefault(intent, []).append(text)
    chosen = sorted(np.random.default_rng(seed).choice(sorted(pool), intents, replace=False))
    texts = [t for i in chosen for t in pool[i][:per_intent]]
    intent_of = np.array([n for n, i in enumerate(chosen) for _ in pool[i][:per_intent]])
    return chosen, texts, intent_of


def embed_cached(texts: list[str], model_name: str, cache: str | None) -> np.ndarray:
    """Unit-length embeddings of ``texts``, read from ``cache`` when it exists, else computed
    (and saved there when a path is given)."""
    path = Path(cache) if cache else None
    if path and path.exists():
        return np.load(path)
    vectors = load_model(model_name).encode(texts, batch_size=64, normalize_embeddings=True)
    if path:
        np.save(path, vectors)
    return np.asarray(vectors)
