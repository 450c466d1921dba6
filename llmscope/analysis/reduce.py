"""Reduction: seeded UMAP (cosine) to a few dimensions for clustering, and a 2-D map.

UMAP is fitted on at most ``sample`` texts (all of them below that). Both layouts share one
exact cosine k-nearest-neighbour graph, computed here with matrix products, which is faster
than approximate search at this size and needs no JIT warm-up: plain numpy for small problems
(a small run never imports torch), torch above ``NUMPY_KNN_MAX`` query-point pairs.

The graph UMAP gets is quantised (``quantised_knn``): each neighbour's cosine distance is
recomputed in float64 and rounded to ``KNN_QUANTUM``, and neighbours are ordered by (rounded
distance, index). Vectors that agree to a few decimals (torch and fp32 onnx embeddings, numpy
and torch products) then give the same graph bit for bit, hence the same seeded layout and the
same clusters: without it a 1e-7 difference reorders near-tied neighbours, which for UMAP's
optimisation is as good as another seed (``docs/benchmarks/analysis-quality.md``).

Texts beyond the sample are placed at the distance-weighted mean of their nearest fitted
neighbours (found in a 64-d PCA projection to keep the search cheap): the same start UMAP's own
``transform`` uses, without its slow refinement epochs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# Neighbour search for placed (not fitted) points happens in this many PCA dimensions.
PLACE_DIMS = 64
ROWS_PER_BLOCK = 4096
# Up to this many query-point products the kNN runs in numpy: below it torch's import (~1-2 s
# cold) costs more than its faster matrix product saves.
NUMPY_KNN_MAX = 4_000_000
# Distances of the graph UMAP gets are rounded to this: float noise (~1e-7) cannot move them,
# and 0.01 of cosine distance is below what separates two topics' neighbours.
KNN_QUANTUM = 0.01
# Candidates gathered beyond k before the quantised reordering, so that a neighbour the noise
# pushed just past the k-th place is still among them.
KNN_MARGIN = 10
ROWS_PER_EXACT_BLOCK = 512


@dataclass(frozen=True)
class Reduction:
    """Coordinates of every input row: ``reduced`` for clustering, ``layout`` for the map."""

    reduced: np.ndarray  # (n, dims) float32
    layout: np.ndarray  # (n, 2) float32


def cosine_knn(
    queries: np.ndarray, points: np.ndarray, k: int, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest ``points`` of each query row by cosine distance (rows unit-length).

    With ``exclude_self`` the queries are the points, and each row's first neighbour is itself
    (UMAP's precomputed-kNN convention).
    """
    k = min(k, len(points))
    if len(queries) * len(points) <= NUMPY_KNN_MAX:
        indices, similarities = _numpy_top(queries, points, k, exclude_self)
    else:
        indices, similarities = _torch_top(queries, points, k, exclude_self)
    distances = np.clip(1.0 - similarities, 0.0, 2.0).astype(np.float32)
    if exclude_self:
        distances[:, 0] = 0.0
    return indices, distances


def _numpy_top(
    queries: np.ndarray, points: np.ndarray, k: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    sims = (
        np.ascontiguousarray(queries, dtype=np.float32)
        @ np.ascontiguousarray(points, dtype=np.float32).T
    )
    if exclude_self:
        np.fill_diagonal(sims, 2.0)  # itself first, even among exact duplicates
    if k < sims.shape[1]:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    top_sims = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-top_sims, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64), np.take_along_axis(
        top_sims, order, axis=1
    )


def _torch_top(
    queries: np.ndarray, points: np.ndarray, k: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    import torch  # here, not at import: small problems never load it

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    p = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    indices = np.empty((len(queries), k), dtype=np.int64)
    similarities = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), ROWS_PER_BLOCK):
        sims = q[start : start + ROWS_PER_BLOCK] @ p.T
        if exclude_self:
            rows = torch.arange(sims.shape[0])
            sims[rows, rows + start] = 2.0  # itself first, even among exact duplicates
        top = torch.topk(sims, k, dim=1)
        indices[start : start + len(sims)] = top.indices.numpy()
        similarities[start : start + len(sims)] = top.values.numpy()
    return indices, similarities


def quantised_knn(
    data: np.ndarray, k: int, *, quantum: float = KNN_QUANTUM
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of each row of ``data`` (itself first), stable under float noise.

    Candidates come from ``cosine_knn``; their cosine distances are recomputed in float64,
    rounded to ``quantum``, and each row's neighbours ordered by (rounded distance, index).
    Returns the indices and the rounded distances (float32; 0 for the row itself).
    """
    n = len(data)
    k = min(k, n)
    candidates, _ = cosine_knn(data, data, min(n, k + KNN_MARGIN), exclude_self=True)
    exact = np.asarray(data, dtype=np.float64)
    exact = exact / np.maximum(np.linalg.norm(exact, axis=1, keepdims=True), 1e-300)
    steps = np.empty(candidates.shape, dtype=np.int64)
    for start in range(0, n, ROWS_PER_EXACT_BLOCK):
        rows = slice(start, start + ROWS_PER_EXACT_BLOCK)
        cosines = np.einsum("id,ijd->ij", exact[rows], exact[candidates[rows]])
        steps[rows] = np.rint(np.clip(1.0 - cosines, 0.0, 2.0) / quantum).astype(np.int64)
    steps[:, 0] = -1  # the row itself stays first, whatever its duplicates
    order = np.lexsort((candidates, steps), axis=1)[:, :k]
    indices = np.take_along_axis(candidates, order, axis=1)
    distances = (np.maximum(np.take_along_axis(steps, order, axis=1), 0) * quantum).astype(
        np.float32
    )
    return indices, distances


def _umap(
    data: np.ndarray, knn: tuple[np.ndarray, np.ndarray], dims: int, neighbors: int, seed: int
) -> np.ndarray:
    with warnings.catch_warnings():
        # umap-learn warns at import that TensorFlow (ParametricUMAP) is absent: not used here.
        warnings.simplefilter("ignore", ImportWarning)
        import umap

    from llmscope.analysis import jit_cache

    jit_cache.enable()  # a later process loads UMAP's compiled code instead of compiling it
    n = len(data)
    model = umap.UMAP(
        n_neighbors=neighbors,
        n_components=dims,
        metric="cosine",
        # min_dist 0 packs clusters tightly for the clusterer; the map spreads them for eyes.
        min_dist=0.0 if dims > 2 else 0.1,
        n_epochs=200,
        # Spectral initialisation needs a few more points than dimensions.
        init="spectral" if n > dims + neighbors + 1 else "random",
        random_state=seed,
        n_jobs=1,  # a seeded UMAP is single-threaded anyway; saying so avoids its warning
        precomputed_knn=(knn[0], knn[1], None),
    )
    with warnings.catch_warnings():
        # Exact duplicates or a tiny input make UMAP warn about its graph; the layout is fine.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(model.fit_transform(data), dtype=np.float32)


def _pca(data: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    mean = data.mean(axis=0)
    _, _, vt = np.linalg.svd(data[: min(len(data), 20_000)] - mean, full_matrices=False)
    return mean, vt[:dims].T


def _place(
    embeddings: np.ndarray, fitted: np.ndarray, coords: list[np.ndarray], k: int
) -> list[np.ndarray]:
    """Coordinates for rows not fitted: distance-weighted means over their nearest fitted rows."""
    mean, basis = _pca(embeddings[fitted], min(PLACE_DIMS, embeddings.shape[1]))
    projected = (embeddings - mean) @ basis
    projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
    rest = np.setdiff1d(np.arange(len(embeddings)), fitted)
    idx, dist = cosine_knn(projected[rest], projected[fitted], k)
    weights = 1.0 / (dist + 1e-3)
    weights /= weights.sum(axis=1, keepdims=True)
    placed = []
    for fitted_coords in coords:
        full = np.empty((len(embeddings), fitted_coords.shape[1]), dtype=np.float32)
        full[fitted] = fitted_coords
        full[rest] = np.einsum("ij,ijd->id", weights, fitted_coords[idx])
        placed.append(full)
    return placed


def reduce(
    embeddings: np.ndarray,
    *,
    dims: int = 5,
    neighbors: int = 15,
    sample: int = 20_000,
    seed: int = 42,
    quantum: float | None = KNN_QUANTUM,
) -> Reduction:
    """Reduce unit-length embeddings to ``dims`` (for clustering) and to 2-D (for the map).

    ``quantum=None``: UMAP gets the exact kNN graph unrounded (the rule before the quantised
    graph, kept for benchmarks)."""
    n = len(embeddings)
    if n == 0:
        return Reduction(np.zeros((0, dims), np.float32), np.zeros((0, 2), np.float32))
    if n <= 3:
        # Too few points for a neighbour graph: a line is an honest layout.
        line = np.zeros((n, max(dims, 2)), dtype=np.float32)
        line[:, 0] = np.arange(n)
        return Reduction(line[:, :dims], line[:, :2])
    rng = np.random.default_rng(seed)
    fitted = np.sort(rng.choice(n, sample, replace=False)) if n > sample else np.arange(n)
    data = embeddings[fitted]
    k = min(neighbors, len(data) - 1)
    if quantum is None:
        knn = cosine_knn(data, data, k, exclude_self=True)
    else:
        knn = quantised_knn(data, k, quantum=quantum)
    reduced = _umap(data, knn, dims, k, seed)
    layout = _umap(data, knn, 2, k, seed)
    if len(fitted) < n:
        reduced, layout = _place(embeddings, fitted, [reduced, layout], k)
    return Reduction(reduced, layout)
