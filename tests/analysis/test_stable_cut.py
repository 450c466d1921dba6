"""Clusters that hold still: float noise in the embeddings does not move the kNN graph or the cut,
and a small reduction neither imports torch nor compiles UMAP's code twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from llmscope.analysis import reduce as reduce_module
from llmscope.analysis.cluster import cluster
from llmscope.analysis.reduce import KNN_QUANTUM, cosine_knn, quantised_knn, reduce


def _overlapping_topics(n: int = 600, topics: int = 30, seed: int = 5) -> np.ndarray:
    """Unit vectors in 64-d around ``topics`` centres, spread enough that topics touch: the
    cut depends on the layout, as on real traffic."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (topics, 64))
    points = centres[rng.integers(0, topics, n)] + rng.normal(0, 1.3, (n, 64))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _perturbed(points: np.ndarray, scale: float) -> np.ndarray:
    noise = np.random.default_rng(11).normal(0, scale, points.shape)
    moved = points + noise
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def test_float_noise_leaves_the_graph_and_the_clusters_unchanged() -> None:
    # 1e-7: the size of the difference between torch and fp32 onnx embeddings of one text.
    points = _overlapping_topics()
    moved = _perturbed(points, 1e-7)
    plain = cosine_knn(points, points, 15, exclude_self=True)
    plain_moved = cosine_knn(moved, moved, 15, exclude_self=True)
    assert not np.array_equal(plain[1], plain_moved[1])  # the noise is there

    index, distance = quantised_knn(points, 15)
    moved_index, moved_distance = quantised_knn(moved, 15)
    np.testing.assert_array_equal(index, moved_index)
    np.testing.assert_array_equal(distance, moved_distance)

    labels = cluster(reduce(points).reduced).labels
    assert len(np.unique(labels)) >= 10
    np.testing.assert_array_equal(labels, cluster(reduce(moved).reduced).labels)
    # The exact graph unrounded: the same noise moves the layout, and the clusters with it.
    before = cluster(reduce(points, quantum=None).reduced).labels
    assert adjusted_rand_score(before, cluster(reduce(moved, quantum=None).reduced).labels) < 0.95


def test_the_quantised_graph_orders_ties_by_index_and_keeps_each_row_first() -> None:
    # Rows 1, 2, 3 are equally far (cosine 0.5) from row 0; row 4 duplicates row 0.
    c, s_ = 0.5, np.sqrt(3) / 2
    points = np.array(
        [[1, 0, 0], [c, s_, 0], [c, -s_, 0], [c, 0, s_], [1, 0, 0], [-s_, c, 0]], dtype=np.float64
    )
    index, distance = quantised_knn(points.astype(np.float32), 4)

    assert index[0].tolist() == [0, 4, 1, 2]  # itself, its duplicate, then ties by index
    assert index[4].tolist() == [4, 0, 1, 2]  # the duplicate is first in its own row
    np.testing.assert_allclose(distance[0], [0.0, 0.0, 0.5, 0.5])
    steps = distance / KNN_QUANTUM
    np.testing.assert_allclose(steps, np.rint(steps), atol=1e-4)  # multiples of the quantum


def test_the_numpy_and_torch_paths_give_the_same_quantised_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    points = _overlapping_topics(n=400)
    by_numpy = quantised_knn(points, 15)
    monkeypatch.setattr(reduce_module, "NUMPY_KNN_MAX", 0)  # every size goes to torch
    by_torch = quantised_knn(points, 15)
    np.testing.assert_array_equal(by_numpy[0], by_torch[0])
    np.testing.assert_array_equal(by_numpy[1], by_torch[1])
    # The plain kNN of both paths agrees up to float noise.
    monkeypatch.setattr(reduce_module, "NUMPY_KNN_MAX", 10**12)
    numpy_distances = cosine_knn(points, points, 15, exclude_self=True)[1]
    monkeypatch.setattr(reduce_module, "NUMPY_KNN_MAX", 0)
    torch_distances = cosine_knn(points, points, 15, exclude_self=True)[1]
    np.testing.assert_allclose(numpy_distances, torch_distances, atol=1e-5)


SMALL_RUN = """
import json, sys
import numpy as np
from llmscope.analysis.reduce import reduce
rng = np.random.default_rng(0)
points = rng.normal(size=(200, 32)).astype(np.float32)
points /= np.linalg.norm(points, axis=1, keepdims=True)
reduced = reduce(points).reduced
print(json.dumps({"torch": "torch" in sys.modules, "sum": float(np.abs(reduced).sum())}))
"""


def test_a_small_reduction_skips_torch_and_caches_umaps_compiled_code(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def run() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", SMALL_RUN], env=env, capture_output=True, text=True, check=True
        )
        answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    first = run()
    assert first["torch"] is False
    cached = sorted(p.name for p in (tmp_path / "numba").rglob("*.nbc"))
    # UMAP's layout optimisation, the bulk of what a fit compiles outside parallel functions.
    assert any(name.startswith("layouts._optimize_layout_euclidean") for name in cached)
    second = run()  # loads the compiled code: the same layout
    assert second == first
