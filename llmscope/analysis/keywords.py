"""Description of clusters: class-based TF-IDF keywords and representative examples.

c-TF-IDF (as in BERTopic) treats all texts of one cluster as one document: a term scores high
when it is frequent in the cluster and rare across clusters. Representatives are the members
nearest (by cosine) to the cluster's mean embedding.

Text in spaced languages is tokenised by a word pattern, as in English. When any text holds
Japanese or Chinese, the vectorizer tokenises each text itself: those by ``words.py``
(morphological analysis, or character bigrams for Chinese), the others as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer

from llmscope.analysis.words import (
    is_unspaced,
    join_words,
    unspaced_words,
    without_contractions,
)

WORD_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"  # words of letters: no ids or numbers


def ctfidf_keywords(
    texts: Sequence[str],
    labels: np.ndarray,
    *,
    top: int = 8,
    memo: dict[Any, Counter[str]] | None = None,
    only: int | None = None,
) -> dict[int, list[str]]:
    """Top ``top`` terms (words and two-word phrases) per cluster label (``-1`` ignored).

    ``memo`` keeps each class document's term counts between calls: a relabelling that only
    splits one class (a sub-cluster as one more class, ``pipeline.py``) then analyses two
    documents, not every text again (it was ~0.8 s per sub-cluster on a 12,000-text run).
    ``only`` returns that label's terms alone (the scores still need every class). The counts
    are CountVectorizer's (its analyzer, its sorted vocabulary), so the result does not depend
    on the memo.
    """
    clusters = sorted(int(c) for c in np.unique(labels) if c >= 0)
    if not clusters:
        return {}
    members = [[texts[int(i)] for i in np.flatnonzero(labels == c)] for c in clusters]
    spaced = CountVectorizer(
        stop_words="english",
        ngram_range=(1, 2),
        token_pattern=WORD_PATTERN,
        preprocessor=without_contractions,  # lower-cases, as the default preprocessor does
    )
    analyzer: Callable[[Any], list[str]]
    documents: list[Any]
    if any(is_unspaced(t) for t in texts):
        analyzer = _any_language(spaced.build_analyzer())
        documents = [tuple(m) for m in members]  # each cluster's texts, tokenised one by one
    else:
        analyzer, documents = spaced.build_analyzer(), [" ".join(m) for m in members]
    memo = {} if memo is None else memo
    for document in documents:
        if document not in memo:
            memo[document] = Counter(
                analyzer(list(document) if isinstance(document, tuple) else document)
            )
    counted = [memo[d] for d in documents]
    terms = np.array(sorted(set().union(*counted)), dtype=object)
    if terms.size == 0:  # only stop words or empty texts: nothing to describe
        return {c: [] for c in clusters}
    column = {t: i for i, t in enumerate(terms)}
    counts = csr_matrix(
        (
            np.fromiter((n for c in counted for n in c.values()), dtype=np.float64),
            np.fromiter((column[t] for c in counted for t in c), dtype=np.int64),
            np.cumsum([0] + [len(c) for c in counted]),
        ),
        shape=(len(counted), terms.size),
    )
    words_per_cluster = np.asarray(counts.sum(axis=1)).ravel()
    tf = counts.multiply(1.0 / np.maximum(words_per_cluster, 1.0)[:, None]).tocsr()
    frequency = np.asarray(counts.sum(axis=0)).ravel()
    # BERTopic's idf: log(1 + average words per cluster / frequency of the term overall).
    idf = np.log(1.0 + words_per_cluster.mean() / np.maximum(frequency, 1e-12))
    scores = tf.multiply(idf[None, :]).tocsr()
    result: dict[int, list[str]] = {}
    for row, c in enumerate(clusters):
        if only is not None and c != only:
            continue
        line = scores.getrow(row).toarray().ravel()
        best = [i for i in np.argsort(-line, kind="stable")[: top * 3] if line[i] > 0]
        kept = _drop_redundant([str(terms[i]) for i in best])[:top]
        result[c] = [join_words(term.split()) for term in kept]
    return result


def _any_language(spaced: Callable[[str], list[str]]) -> Callable[[list[str]], list[str]]:
    """Unigrams and bigrams of each text of a cluster, by the rule of the text's script."""

    def analyse(texts: list[str]) -> list[str]:
        terms: list[str] = []
        for text in texts:
            if not is_unspaced(text):
                terms.extend(spaced(text))
                continue
            words = unspaced_words(text)
            terms.extend(words)
            terms.extend(f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if a != b)
        return terms

    return analyse


def _drop_redundant(terms: list[str]) -> list[str]:
    """Skip a single word already shown inside a higher-ranked phrase (and vice versa)."""
    kept: list[str] = []
    for term in terms:
        words = set(term.split())
        if any(words <= set(k.split()) or set(k.split()) <= words for k in kept):
            continue
        kept.append(term)
    return kept


def representatives(
    embeddings: np.ndarray, labels: np.ndarray, *, top: int = 5
) -> tuple[dict[int, np.ndarray], dict[int, list[int]]]:
    """Per cluster: its unit-length centroid and the row indices of the ``top`` nearest members."""
    centroids: dict[int, np.ndarray] = {}
    nearest: dict[int, list[int]] = {}
    for c in sorted(int(c) for c in np.unique(labels) if c >= 0):
        members = np.flatnonzero(labels == c)
        centre = embeddings[members].mean(axis=0)
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
        similarity = embeddings[members] @ centre
        centroids[c] = centre.astype(np.float32)
        nearest[c] = [int(members[i]) for i in np.argsort(-similarity, kind="stable")[:top]]
    return centroids, nearest
