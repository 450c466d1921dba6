"""Does the cut hold still? The same queries embedded by two backends, clustered by each.

Banking77 train queries embedded by ``torch`` and by fp32 ``onnx`` (the vectors agree to ~1e-7),
then, on each of several seeded samples of 2,000 queries, the default pipeline (seeded UMAP, then
the silhouette's cut) run on both, and the agreement of the two labelings (ARI). The rows
separate where the disagreement enters:

- ``default``: the pipeline as shipped: UMAP seed 42 on each backend's vectors over the
  quantised kNN graph (``reduce.quantised_knn``), the cut of each;
- ``before: exact graph``: the same with the kNN graph unrounded (the rule before, measured in
  the same run as the baseline);
- ``torch: UMAP seed 42 vs 43``: torch's vectors twice, only the layout's seed changed;

and with ``--explore`` the rows that located where the disagreement enters:

- ``same layout, +1e-6``: the cut of torch's layout against the cut of that layout with 1e-6
  Gaussian noise added (the cut's own sensitivity, UMAP held fixed);
- ``5 layouts concatenated``: five seeded UMAP layouts side by side (a consensus space) on each
  backend;
- ``raw 384-d``: the cut made on the embeddings themselves, no UMAP;
- ``spectral 50-d``: no UMAP optimisation either: the spectral embedding (the graph Laplacian's
  eigenvectors, UMAP's own initialisation) of the same exact 15-nearest-neighbour fuzzy graph, 50
  dimensions, rows scaled to unit length, then the same cut. An eigenvector problem is a
  continuous function of the graph, where UMAP's stochastic optimisation is not.

With ``--full``, also the whole train set (10,003 queries), torch's vectors: the default, the
exact graph and (with ``--explore``) the spectral reduction against the 77 intents.

Each row also gives NMI/ARI against the 77 intents (torch's labeling, then onnx's).

    python benchmarks/analysis_stability.py [--samples 5] [--full] [--explore] \
        [--torch-cache T.npy] [--onnx-cache O.npy]

The caches hold the 10,003 vectors of each backend (embedded and written when missing).
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from llmscope.analysis.cluster import Clustering, cluster
from llmscope.analysis.encoders import TorchEncoder
from llmscope.analysis.onnx_backend import OnnxEncoder
from llmscope.analysis.reduce import cosine_knn, reduce

MODEL = "all-MiniLM-L6-v2"
SPECTRAL_DIMS = 50
SAMPLE = 2_000
CONSENSUS_LAYOUTS = 5


def _vectors(texts: list[str], cache: Path | None, backend: str) -> np.ndarray:
    if cache and cache.exists():
        cached: np.ndarray = np.load(cache)
        return cached
    started = time.perf_counter()
    if backend == "torch":
        vectors = TorchEncoder(MODEL, batch_size=64).encode(texts)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            vectors = OnnxEncoder(
                MODEL, precision="fp32", cache_dir=Path(workdir), batch_size=64
            ).encode(texts)
    print(f"embedded {len(texts)} texts with {backend} in {time.perf_counter() - started:.0f}s")
    if cache:
        np.save(cache, vectors)
    return vectors


def spectral(vectors: np.ndarray, dims: int = SPECTRAL_DIMS, neighbors: int = 15) -> np.ndarray:
    """The spectral embedding of the exact cosine kNN fuzzy graph, rows unit length."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from umap.spectral import spectral_layout
        from umap.umap_ import fuzzy_simplicial_set

        knn = cosine_knn(vectors, vectors, neighbors, exclude_self=True)
        graph, _, _ = fuzzy_simplicial_set(
            vectors, neighbors, np.random.RandomState(42), "precomputed", {}, knn[0], knn[1]
        )
        layout = spectral_layout(vectors, graph, dims, np.random.RandomState(42))
    unit: np.ndarray = np.asarray(layout, dtype=np.float32)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    return unit


def _row(name: str, a: Clustering, b: Clustering, truth: np.ndarray) -> str:
    def quality(c: Clustering) -> str:
        nmi = normalized_mutual_info_score(truth, c.labels)
        return f"{nmi:.3f}/{adjusted_rand_score(truth, c.labels):.3f}"

    return (
        f"| {name} | {a.n_clusters}/{b.n_clusters} | "
        f"{adjusted_rand_score(a.labels, b.labels):.3f} | {quality(a)} | {quality(b)} |"
    )


def _explore(t: np.ndarray, o: np.ndarray, truth: np.ndarray) -> None:
    layouts_t = [reduce(t, seed=42 + i).reduced for i in range(CONSENSUS_LAYOUTS)]
    layouts_o = [reduce(o, seed=42 + i).reduced for i in range(CONSENSUS_LAYOUTS)]
    default_t = cluster(layouts_t[0])
    jitter = np.random.default_rng(1).normal(0, 1e-6, layouts_t[0].shape)
    jittered = cluster((layouts_t[0] + jitter).astype(np.float32))
    print(_row("torch: same layout, +1e-6 (the cut alone)", default_t, jittered, truth))
    print(
        _row(
            f"{CONSENSUS_LAYOUTS} layouts concatenated",
            cluster(np.hstack(layouts_t)),
            cluster(np.hstack(layouts_o)),
            truth,
        )
    )
    print(_row("raw 384-d (no UMAP)", cluster(t), cluster(o), truth))
    print(_row(f"spectral {SPECTRAL_DIMS}-d", cluster(spectral(t)), cluster(spectral(o)), truth))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--torch-cache", type=Path)
    parser.add_argument("--onnx-cache", type=Path)
    parser.add_argument("--full", action="store_true", help="also the whole train set")
    parser.add_argument("--explore", action="store_true", help="also the exploratory rows")
    args = parser.parse_args()
    with open(Path(args.data) / "banking77" / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [r["text"] for r in rows]
    intents = np.array([r["category"] for r in rows])
    torch_vectors = _vectors(texts, args.torch_cache, "torch")
    onnx_vectors = _vectors(texts, args.onnx_cache, "onnx")
    print(
        f"torch against onnx: largest coordinate difference "
        f"{np.abs(torch_vectors - onnx_vectors).max():.1e}"
    )
    started = time.perf_counter()
    for sample in range(args.samples):
        rows_of = np.random.default_rng(sample).choice(len(texts), SAMPLE, replace=False)
        t, o, truth = torch_vectors[rows_of], onnx_vectors[rows_of], intents[rows_of]
        print(f"\nsample {sample} ({SAMPLE} queries)\n")
        print("| clustering | k torch/onnx | ARI torch vs onnx | NMI/ARI torch | NMI/ARI onnx |")
        print("|---|---|---|---|---|")
        default_t, default_o = cluster(reduce(t).reduced), cluster(reduce(o).reduced)
        print(_row("default (quantised kNN graph, UMAP seed 42)", default_t, default_o, truth))
        exact_t = cluster(reduce(t, quantum=None).reduced)
        exact_o = cluster(reduce(o, quantum=None).reduced)
        print(_row("before: exact graph (unrounded)", exact_t, exact_o, truth))
        print(
            _row("torch: UMAP seed 42 vs 43", default_t, cluster(reduce(t, seed=43).reduced), truth)
        )
        if args.explore:
            _explore(t, o, truth)
    if args.full:
        print(f"\nwhole train set ({len(texts)} queries, torch), against the 77 intents\n")
        names = ["default", "before: exact graph"] + (
            [f"spectral {SPECTRAL_DIMS}-d"] if args.explore else []
        )
        for name in names:
            begun = time.perf_counter()
            if name == "default":
                points = reduce(torch_vectors, seed=42).reduced
            elif name == "before: exact graph":
                points = reduce(torch_vectors, seed=42, quantum=None).reduced
            else:
                points = spectral(torch_vectors)
            labels = cluster(points).labels
            print(
                f"{name:20s} NMI {normalized_mutual_info_score(intents, labels):.3f}  "
                f"ARI {adjusted_rand_score(intents, labels):.3f}  "
                f"clusters {labels.max() + 1}  {time.perf_counter() - begun:.0f}s"
            )
    print(
        f"\n{time.perf_counter() - started:.0f}s; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
