"""Bounded runs: every record gets a cluster, though only a sample of them was clustered.

Above ``LLMSCOPE_ANALYSIS_MAX_RECORDS`` a run clusters the distinct texts of a seeded sample
of each window (``sampling.py``); this module carries that clustering over to every other
text of both windows, so every count, share, rate and test of the run is computed on all of
its records and all of their ratings, and the export lists every record.

Rule: a text that was not clustered takes the weighted vote of its ``NEIGHBOURS`` nearest
clustered texts (exact cosine neighbours of the embeddings the cut was computed from, weight
``1 / (distance + 0.001)``, so an exact duplicate decides alone: the weighting ``reduce.py``
places texts beyond UMAP's fitted sample with). Its micro-cluster (for
testing below the cut) is the heaviest one among the neighbours that voted for the winner, and
its map position the weighted mean of all the neighbours'. A record whose text was clustered
keeps that text's cluster: the rule only ever decides for texts the sample did not hold.

Measured on Banking77's 13,083 distinct queries (``benchmarks/assignment_agreement.py``,
figures in ``docs/benchmarks/analysis-speed.md``). The rule alone: given the clusters that
clustering everything gave a seeded 20% (50%) of the texts, the vote gives 95.4% (97.9%) of the
others back their own cluster; the nearest clustered text alone 96.7% (97.9%), the same vote
in ``reduce.py``'s 64-d PCA projection 93.9% (97.2%) at 5-10x the time, the nearest centroid
89-90%. The vote is kept over the single nearest text (within 1.3 points of it) because one
stray neighbour cannot decide it and its neighbours also give the map position. End to end, a
run clustering 20% (50%) and assigning the rest agrees with clustering everything at ARI 0.63
(0.66), over the assigned texts as over the clustered ones: the difference is the cut chosen
on fewer texts, not the assignment; against the intents it scores NMI 0.77 / ARI 0.45
(0.81 / 0.56) where clustering everything scores 0.80 / 0.47.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from llmscope.analysis.cluster import Clustering
from llmscope.analysis.reduce import Reduction, cosine_knn

NEIGHBOURS = 15
BLOCK = 8192  # texts voted at once: bounds the (block, clusters) score matrix


@dataclasses.dataclass(frozen=True)
class Neighbours:
    """For each text to assign: its nearest clustered texts (indices into the clustered set)
    and their normalised weights."""

    index: np.ndarray  # (m, k) int64
    weight: np.ndarray  # (m, k) float32, rows sum to 1


def nearest_clustered(
    queries: np.ndarray, clustered: np.ndarray, k: int = NEIGHBOURS
) -> Neighbours:
    """The ``k`` nearest rows of ``clustered`` to each row of ``queries`` (unit-length
    embeddings), weighted by inverse cosine distance."""
    index, distance = cosine_knn(queries, clustered, k)
    weight = 1.0 / (distance + 1e-3)
    weight /= weight.sum(axis=1, keepdims=True)
    return Neighbours(index, weight.astype(np.float32))


def vote(labels: np.ndarray, near: Neighbours, n_labels: int) -> np.ndarray:
    """Per query, the label with the largest summed weight among its neighbours (ties: the
    smaller label, so clusters numbered by size favour the larger)."""
    out = np.empty(len(near.index), dtype=np.int64)
    for start in range(0, len(out), BLOCK):
        idx = near.index[start : start + BLOCK]
        scores = np.zeros((len(idx), max(n_labels, 1)), dtype=np.float64)
        rows = np.repeat(np.arange(len(idx)), idx.shape[1])
        np.add.at(scores, (rows, labels[idx].ravel()), near.weight[start : start + BLOCK].ravel())
        out[start : start + BLOCK] = scores.argmax(axis=1)
    return out


def _micro_vote(
    micro: np.ndarray, labels: np.ndarray, winner: np.ndarray, near: Neighbours, n_micro: int
) -> np.ndarray:
    """Per query, the heaviest micro-cluster among the neighbours in the winning cluster."""
    agree = labels[near.index] == winner[:, None]
    weighted = Neighbours(near.index, np.where(agree, near.weight, 0.0).astype(np.float32))
    return vote(micro, weighted, n_micro)


def assign_rest(
    embeddings: np.ndarray,
    clustered: np.ndarray,
    reduction: Reduction,
    clustering: Clustering,
    k: int = NEIGHBOURS,
) -> tuple[Reduction, Clustering]:
    """Extend a clustering of ``embeddings[clustered]`` (sorted text indices) to every text.

    ``reduction`` and ``clustering`` hold one row per clustered text; the returned ones hold
    one row per text of ``embeddings``, the clustered texts unchanged.
    """
    n = len(embeddings)
    if len(clustered) == n:
        return reduction, clustering
    rest = np.setdiff1d(np.arange(n), clustered)
    labels = np.empty(n, dtype=np.int64)
    layout = np.empty((n, reduction.layout.shape[1]), dtype=np.float32)
    reduced = np.empty((n, reduction.reduced.shape[1]), dtype=np.float32)
    labels[clustered] = clustering.labels
    layout[clustered] = reduction.layout
    reduced[clustered] = reduction.reduced
    micro: np.ndarray | None = None
    if len(rest) and len(clustered):
        near = nearest_clustered(embeddings[rest], embeddings[clustered], k)
        labels[rest] = vote(clustering.labels, near, clustering.n_clusters)
        layout[rest] = np.einsum("ij,ijd->id", near.weight, reduction.layout[near.index])
        reduced[rest] = np.einsum("ij,ijd->id", near.weight, reduction.reduced[near.index])
        if clustering.micro_labels is not None:
            micro = np.empty(n, dtype=np.int64)
            micro[clustered] = clustering.micro_labels
            n_micro = int(clustering.micro_labels.max()) + 1 if len(clustered) else 0
            micro[rest] = _micro_vote(
                clustering.micro_labels, clustering.labels, labels[rest], near, n_micro
            )
    elif len(rest):  # nothing was clustered: one cluster, as a run over few records gets
        labels[:], layout[:], reduced[:] = 0, 0.0, 0.0
    extended = dataclasses.replace(
        clustering,
        labels=labels,
        n_clusters=max(clustering.n_clusters, 1 if n else 0),
        micro_labels=micro,
    )
    return Reduction(reduced, layout), extended
