"""Clustering quality on Banking77 train: llmscope's default pipeline against two references.

llmscope's default (not told k) vs the BERTopic default pipeline (UMAP n_neighbors 15, 5 dims,
min_dist 0, cosine; HDBSCAN min_cluster_size 10) vs KMeans told the true k on the same 5-d
UMAP. Prints NMI, ARI, number of clusters, noise share and seconds for each, side by side,
and the load average. Also the default's cut without the k <= sqrt(n) bound (the rule before
granularity fitted n, on the same reduction) as the baseline of that change, and the default
on the exact kNN graph unrounded (the reduction before the quantised graph) as the baseline of
that one.

    python benchmarks/analysis_clustering.py [--data ../shared/data] [--embeddings FILE.npy]
        [--no-references]

``--embeddings``: read the texts' embeddings from FILE.npy if it exists, else embed and
write them there (embedding 10,003 texts is most of the run on a loaded machine).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from llmscope.analysis.cluster import cluster
from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.analysis.reduce import reduce
from llmscope.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--embeddings", type=Path, help="cache of the embeddings (.npy)")
    parser.add_argument(
        "--no-references", action="store_true", help="skip BERTopic's pipeline and KMeans"
    )
    args = parser.parse_args()
    with open(Path(args.data) / "banking77" / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    texts, labels = [r["text"] for r in rows], [r["category"] for r in rows]
    settings = Settings(database_url="sqlite://")

    started = time.perf_counter()
    if args.embeddings and args.embeddings.exists():
        embeddings = np.load(args.embeddings)
        print(f"read {len(embeddings)} embeddings from {args.embeddings}")
    else:
        model = load_model(settings.embedding_model)
        embeddings = model.encode(texts, batch_size=64, normalize_embeddings=True)
        print(
            f"embedded {len(texts)} texts in {time.perf_counter() - started:.1f}s "
            f"(cores: {os.cpu_count()})"
        )
        if args.embeddings:
            np.save(args.embeddings, embeddings)

    def report(name: str, predicted: np.ndarray, seconds: float) -> None:
        k = len(set(predicted.tolist()) - {-1})
        print(
            f"{name:38s} NMI {normalized_mutual_info_score(labels, predicted):.3f}  "
            f"ARI {adjusted_rand_score(labels, predicted):.3f}  clusters {k:4d}  "
            f"noise {np.mean(predicted == -1):.3f}  {seconds:6.1f}s"
        )

    started = time.perf_counter()
    reduction, clustering = cluster_embeddings(embeddings, settings)
    report("llmscope default (k automatic)", clustering.labels, time.perf_counter() - started)
    started = time.perf_counter()
    unbounded = cluster(
        reduction.reduced,
        max_clusters=settings.cluster_max,
        min_size=settings.cluster_min_size,
        seed=settings.analysis_seed,
        clusters_per_sqrt_n=None,
    )
    report("  same, k not bounded by sqrt(n)", unbounded.labels, time.perf_counter() - started)
    started = time.perf_counter()
    exact = reduce(
        embeddings,
        dims=settings.reduce_dims,
        neighbors=settings.reduce_neighbors,
        sample=settings.reduce_sample,
        seed=settings.analysis_seed,
        quantum=None,
    )
    before = cluster(
        exact.reduced,
        max_clusters=settings.cluster_max,
        min_size=settings.cluster_min_size,
        seed=settings.analysis_seed,
    )
    report("  same, exact kNN graph (unrounded)", before.labels, time.perf_counter() - started)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.no_references:
        return

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        reduced = umap.UMAP(
            n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=42
        ).fit_transform(embeddings)
        umap_seconds = time.perf_counter() - started
        started = time.perf_counter()
        hdb = HDBSCAN(min_cluster_size=10).fit_predict(reduced)
        report(
            "BERTopic default (UMAP+HDBSCAN 10)", hdb, umap_seconds + time.perf_counter() - started
        )
        started = time.perf_counter()
        km = KMeans(77, n_init=10, random_state=0).fit_predict(reduced)
        report("KMeans told k=77 (same 5-d UMAP)", km, umap_seconds + time.perf_counter() - started)


if __name__ == "__main__":
    main()
