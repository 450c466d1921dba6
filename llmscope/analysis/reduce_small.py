"""Reduction of a small run: PCA instead of UMAP, at or below ``LLMSCOPE_REDUCE_SMALL_MAX`` texts.

UMAP's first call in a process compiles its numba kernels (seconds on two cores) and fits in
seconds more, for a run of a few hundred texts whose clustering PCA serves nearly as well:
the clusterer gets the first :data:`COMPONENTS` principal components, the map the first two.
Numpy only, so a small run loads neither UMAP nor torch. Measured cost on Banking77 samples
of at most 500 texts: ``docs/guides/analysis.md`` (small runs).
"""

from __future__ import annotations

import numpy as np

from llmscope.analysis.reduce import Reduction

__all__ = ["COMPONENTS", "reduce_small"]

COMPONENTS = 10


def reduce_small(embeddings: np.ndarray, *, dims: int = COMPONENTS) -> Reduction:
    """Principal components of unit-length ``embeddings``: ``dims`` for clustering, 2 for the
    map (fewer texts than components: as many as the texts span, zero-padded)."""
    n = len(embeddings)
    if n == 0:
        return Reduction(np.zeros((0, dims), np.float32), np.zeros((0, 2), np.float32))
    data = np.asarray(embeddings, dtype=np.float64)
    centred = data - data.mean(axis=0)
    # Rows <= 500: a thin SVD of the centred data is exact and takes milliseconds.
    u, singular, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(dims, len(singular))
    scores = u[:, :k] * singular[:k]
    # Each component's sign fixed by its largest-magnitude score, so the map does not flip
    # between platforms' SVD routines.
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    scores *= np.where(signs == 0, 1.0, signs)
    coords = np.zeros((n, max(dims, 2)), dtype=np.float32)
    coords[:, :k] = scores
    return Reduction(coords[:, :dims].copy(), coords[:, :2].copy())
