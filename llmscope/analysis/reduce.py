"""Reduction: seeded UMAP (cosine) to a few dimensions for clustering, and a 2-D map.

UMAP is fitted on at most ``sample`` texts (all of them below that). Both layouts share one
exact cosine k-nearest-neighbour graph, computed here with matrix products, which is faster
than approximate search at this size and needs no JIT warm-up. Texts beyond the sample are
placed at the distance-weighted mean of their nearest fitted neighbours (found in a 64-d PCA
projection to keep the search cheap): the same start UMAP's own ``transform`` uses, without
its slow refinement epochs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# Neighbour search for placed (not fitted) points happens in this many PCA dimensions.
PLACE_DIMS = 64
ROWS_PER_BLOCK = 4096


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
    import torch  # here, not at import: a small run (``reduce_small.py``) never loads it

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    p = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    k = min(k, len(points))
    indices = np.empty((len(queries), k), dtype=np.int64)
    distances = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), ROWS_PER_BLOCK):
        sims = q[start : start + ROWS_PER_BLOCK] @ p.T
        if exclude_self:
            rows = torch.arange(sims.shape[0])
            sims[rows, rows + start] = 2.0  # itself first, even among exact duplicates
        top = torch.topk(sims, k, dim=1)
        indices[start : start + len(sims)] = top.indices.numpy()
        distances[start : start + len(sims)] = np.clip(1.0 - top.values.numpy(), 0.0, 2.0)
    if exclude_self:
        distances[:, 0] = 0.0
    return indices, distances


def _umap(
    data: np.ndarray, knn: tuple[np.ndarray, np.ndarray], dims: int, neighbors: int, seed: int
) -> np.ndarray:
    with warnings.catch_warnings():
        # umap-learn warns at import that TensorFlow (ParametricUMAP) is absent: not used here.
        warnings.simplefilter("ignore", ImportWarning)
        import umap

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
) -> Reduction:
    """Reduce unit-length embeddings to ``dims`` (for clustering) and to 2-D (for the map)."""
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
    knn = cosine_knn(data, data, k, exclude_self=True)
    reduced = _umap(data, knn, dims, k, seed)
    layout = _umap(data, knn, 2, k, seed)
    if len(fitted) < n:
        reduced, layout = _place(embeddings, fitted, [reduced, layout], k)
    return Reduction(reduced, layout)
