"""Clustering: an automatic, readable number of clusters on the UMAP-reduced points.

Method (measured on Banking77, see ``docs/benchmarks/analysis-quality.md``):

1. Over-segment: k-means into up to 400 micro-clusters (every point its own micro-cluster
   when there are fewer points).
2. Merge: Ward-linkage agglomeration of the micro-cluster centres gives a dendrogram, i.e.
   one candidate clustering for every k.
3. Choose k: the cut with the highest mean silhouette on a fixed random sample of points,
   among k = 2 .. min(``max_clusters``, n / ``min_size``, ceil(sqrt(n))).
4. Noise: no point is left out. Clusters smaller than ``min_size`` are dissolved and their
   points join the nearest remaining cluster centre. ``-1`` is never produced here.

Clusters are numbered by size, largest first, so cluster 0 is the biggest.

Why k <= sqrt(n) (``CLUSTERS_PER_SQRT_N``): the granularity has to fit the amount of data.
Traffic is made of paraphrases, and once clusters get down to the size of one question's
rephrasings the silhouette rises again with k: the demo's 2,741 distinct texts peak at k = 27
or 28 (silhouette 0.69-0.71, its 14 topics and the new one, some split), dip, then climb to
0.80 at k = 149, groups of ~18 near-identical questions, too small to test. The bound keeps
the cut at the first, topical peak, and lets the number of clusters grow with n so that the
average cluster grows too (sqrt(n) records): each cluster gathers enough records, and
ratings, to be tested, while finer structure is still reached by testing the Ward tree below
the cut (``tree.py``). On Banking77 (10,003 queries, 77 intents) the bound is 101, at the
top of the silhouette's broad plateau (k 40-150, 0.65-0.68): the cut and its NMI/ARI are
unchanged. A parsimony rule (the smallest k within 0.01-0.05 of the best silhouette) was
measured and rejected: on Banking77's flat curve it falls to k 30-38, ARI 0.36-0.43.
Figures and commands: ``docs/benchmarks/analysis-quality.md``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances, silhouette_score

MICRO_CLUSTERS = 400
SILHOUETTE_SAMPLE = 3000
CLUSTERS_PER_SQRT_N = 1.0  # k <= ceil(this * sqrt(n)); see the module docstring


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # (n,) int, 0..k-1 by decreasing size
    n_clusters: int
    silhouette: float | None  # of the chosen cut; None when nothing was chosen
    # The Ward tree the cut was taken from, for testing below the cut (``tree.py``): each
    # point's micro-cluster, the scipy linkage matrix over the micro-clusters (None with fewer
    # than two), and each final cluster's micro-cluster labels before small ones were absorbed.
    micro_labels: np.ndarray | None = None
    linkage: np.ndarray | None = None
    micro_cluster: np.ndarray | None = None  # (n_micro,) final cluster id of each micro, or -1


def _renumber_by_size(labels: np.ndarray) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping[int(v)] for v in labels], dtype=np.int64)


def _absorb_small(points: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids[counts >= min_size]
    if len(keep) == 0 or len(keep) == len(ids):
        return labels
    centres = np.vstack([points[labels == c].mean(axis=0) for c in keep])
    orphans = ~np.isin(labels, keep)
    nearest = pairwise_distances(points[orphans], centres).argmin(axis=1)
    labels = labels.copy()
    labels[orphans] = keep[nearest]
    return labels


def most_clusters(
    n: int,
    *,
    max_clusters: int,
    min_size: int,
    clusters_per_sqrt_n: float | None = CLUSTERS_PER_SQRT_N,
) -> int:
    """The largest k considered for n points; ``clusters_per_sqrt_n=None``: no bound from n
    beyond the minimum size (the rule before granularity fitted n, kept for benchmarks)."""
    upper = min(max_clusters, n // max(min_size, 1))
    if clusters_per_sqrt_n is None:
        return upper
    return min(upper, math.ceil(clusters_per_sqrt_n * math.sqrt(n)))


def cluster(
    points: np.ndarray,
    *,
    max_clusters: int = 150,
    min_size: int = 10,
    seed: int = 42,
    clusters_per_sqrt_n: float | None = CLUSTERS_PER_SQRT_N,
) -> Clustering:
    """Cluster ``points`` (n x d) into an automatically chosen number of clusters."""
    n = len(points)
    upper = most_clusters(
        n, max_clusters=max_clusters, min_size=min_size, clusters_per_sqrt_n=clusters_per_sqrt_n
    )
    if n == 0:
        return Clustering(np.zeros(0, dtype=np.int64), 0, None)
    if upper < 2:
        return Clustering(np.zeros(n, dtype=np.int64), 1, None)

    if n > MICRO_CLUSTERS:
        with warnings.catch_warnings():
            # Duplicated points can leave fewer distinct centres than asked for; harmless.
            warnings.simplefilter("ignore")
            micro = KMeans(MICRO_CLUSTERS, n_init=1, random_state=seed).fit(points)
        centres, micro_labels = micro.cluster_centers_, micro.labels_
    else:
        centres, micro_labels = points.astype(np.float64), np.arange(n)
    tree = linkage(centres, method="ward")

    rng = np.random.default_rng(seed)
    probe = rng.choice(n, min(n, SILHOUETTE_SAMPLE), replace=False)
    distances = pairwise_distances(points[probe])
    best: tuple[float, np.ndarray] | None = None
    for k in range(2, upper + 1):
        flat = fcluster(tree, k, criterion="maxclust") - 1
        labels = flat[micro_labels]
        if len(np.unique(labels[probe])) < 2:
            continue
        score = float(silhouette_score(distances, labels[probe], metric="precomputed"))
        if best is None or score > best[0]:
            best = (score, flat)
    if best is None:
        return Clustering(np.zeros(n, dtype=np.int64), 1, None)
    flat = best[1]
    labels = _renumber_by_size(_absorb_small(points, flat[micro_labels], min_size))
    # Which final cluster each micro-cluster's flat cluster became (-1: it was dissolved).
    flat_ids, flat_sizes = np.unique(flat[micro_labels], return_counts=True)
    dissolved = set(flat_ids[flat_sizes < min_size].tolist())
    if len(dissolved) == len(flat_ids):
        dissolved = set()  # _absorb_small keeps everything when nothing is big enough
    final_of_flat = {
        int(f): int(labels[np.flatnonzero(flat[micro_labels] == f)[0]]) for f in flat_ids
    }
    micro_cluster = np.array(
        [-1 if int(f) in dissolved else final_of_flat.get(int(f), -1) for f in flat],
        dtype=np.int64,
    )
    return Clustering(
        labels, int(labels.max()) + 1, best[0], micro_labels.astype(np.int64), tree, micro_cluster
    )
