"""Clustering quality on Banking77 train: llmscope's default pipeline against two references.

llmscope's default (not told k) vs the BERTopic default pipeline (UMAP n_neighbors 15, 5 dims,
min_dist 0, cosine; HDBSCAN min_cluster_size 10) vs KMeans told the true k on the same 5-d
UMAP. Prints NMI, ARI, number of clusters, noise share and seconds for each, side by side.

    python benchmarks/analysis_clustering.py [--data ../shared/data]
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

from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    args = parser.parse_args()
    with open(Path(args.data) / "banking77" / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    texts, labels = [r["text"] for r in rows], [r["category"] for r in rows]
    settings = Settings(database_url="sqlite://")

    started = time.perf_counter()
    model = load_model(settings.embedding_model)
    embeddings = model.encode(texts, batch_size=64, normalize_embeddings=True)
    print(
        f"embedded {len(texts)} texts in {time.perf_counter() - started:.1f}s "
        f"(cores: {os.cpu_count()})"
    )

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
