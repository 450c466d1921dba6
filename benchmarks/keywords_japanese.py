"""Cluster keywords of Japanese traffic: the word pattern alone (before) against words.py (after).

On the 240-question Japanese test set (``tests/analysis/japanese_questions.py``, 8 topics), with
the clusters of the real pipeline (all-MiniLM-L6-v2, UMAP, clustering) and with the true
topics as clusters, it prints per variant:

- sentence-long: the share of keywords that are a whole question of the set;
- mean keyword length in characters;
- topic hit: the share of clusters whose top 3 keywords hold a word of the cluster's
  (majority) topic (``TOPIC_WORDS``).

Then the speed of the morphological analysers that are installed (SudachiPy is what llmscope
uses; Janome and fugashi + unidic-lite are measured when present), in texts per second.

    python benchmarks/keywords_japanese.py
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from unittest import mock

import numpy as np

from llmscope.analysis import keywords
from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.config import Settings
from tests.analysis.japanese_questions import TOPIC_WORDS, labelled


def measure(
    texts: list[str], labels: np.ndarray, truth: list[int], topics: list[str]
) -> tuple[float, float, float, int]:
    words = keywords.ctfidf_keywords(texts, labels)
    whole = {t.rstrip("？?。") for t in texts}
    flat = [w for ws in words.values() for w in ws]
    sentence_long = sum(w.replace(" ", "").rstrip("？?。") in whole for w in flat)
    hits = 0
    for c, ws in words.items():
        members = np.flatnonzero(labels == c)
        topic = topics[Counter(truth[i] for i in members).most_common(1)[0][0]]
        hits += any(any(t in w for t in TOPIC_WORDS[topic]) for w in ws[:3])
    mean_len = float(np.mean([len(w) for w in flat])) if flat else 0.0
    return sentence_long / max(len(flat), 1), mean_len, hits / max(len(words), 1), len(flat)


def analyser_speeds(texts: list[str]) -> dict[str, float]:
    """Texts per second of each installed analyser, tokenising and reading parts of speech."""
    runs: dict[str, Callable[[str], object]] = {}
    from llmscope.analysis.words import _sudachi

    sudachi = _sudachi()
    runs["sudachipy (core, mode C)"] = lambda t: [m.part_of_speech() for m in sudachi.tokenize(t)]
    try:
        import fugashi

        tagger = fugashi.Tagger()
        runs["fugashi + unidic-lite"] = lambda t: [w.feature.pos1 for w in tagger(t)]
    except (ImportError, RuntimeError):
        pass
    try:
        from janome.tokenizer import Tokenizer

        janome = Tokenizer()
        runs["janome"] = lambda t: [w.part_of_speech for w in janome.tokenize(t)]
    except ImportError:
        pass
    speeds = {}
    for name, run in runs.items():
        run(texts[0])
        started = time.perf_counter()
        for text in texts:
            run(text)
        speeds[name] = len(texts) / (time.perf_counter() - started)
    return speeds


def main() -> None:
    texts, truth, topics = labelled()
    settings = Settings()
    model = load_model(settings.embedding_model)
    vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    _, clustering = cluster_embeddings(vectors, settings)
    print(f"{len(texts)} Japanese questions, {len(topics)} topics; load {os.getloadavg()[0]:.2f}")
    print(f"pipeline found {clustering.n_clusters} clusters")
    for grouping, labels in (
        ("pipeline clusters", clustering.labels),
        ("true topics", np.array(truth)),
    ):
        for variant in ("before (word pattern)", "after (words.py)"):
            if variant.startswith("before"):
                with mock.patch.object(keywords, "is_unspaced", lambda _t: False):
                    figures = measure(texts, labels, truth, topics)
            else:
                figures = measure(texts, labels, truth, topics)
            share, mean_len, hit, n = figures
            print(
                f"{grouping:18} {variant:22} keywords {n:3d}  sentence-long {share:6.1%}  "
                f"mean length {mean_len:5.1f} chars  topic hit {hit:6.1%}"
            )
    true_words = keywords.ctfidf_keywords(texts, np.array(truth))
    for c, ws in sorted(true_words.items()):
        print(f"  {topics[c]:13} {', '.join(ws)}")
    for name, speed in analyser_speeds(texts * 20).items():
        print(f"analyser {name:26} {speed:8.0f} texts/s (load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
