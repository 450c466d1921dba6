"""Bounded runs: how well assigning the unclustered texts agrees with clustering everything.

On Banking77's distinct queries (train and test, 77 intents), with the vectors of the chosen
backend (read from, or added to, the embedding cache of ``--store``):

1. **The rule alone.** Cluster every text (the default pipeline), keep a seeded fraction of
   the texts with the labels that clustering gave them, and assign the others by each rule:
   the share of held-out texts given back their own cluster. Rules: the product's weighted
   vote of the 15 nearest clustered texts (``assign.py``), the same vote in the 64-d PCA
   projection ``reduce.py`` places texts in, the nearest neighbour alone, and the nearest
   cluster centroid (cosine).
2. **End to end.** Cluster only the fraction, assign the rest with the product's rule, and
   compare with clustering everything: ARI over all texts and over the assigned ones, and
   NMI/ARI against the intents. The floor to read it against: two runs over everything that
   differ only in the seed.

The load average is printed beside every timing.

    python benchmarks/assignment_agreement.py [--data ../shared/data] [--store /tmp/scale/m1.db]
        [--backend onnx-int8] [--fractions 0.2,0.5]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sqlalchemy.orm import Session

from llmscope.analysis.assign import assign_rest, nearest_clustered, vote
from llmscope.analysis.cluster import Clustering
from llmscope.analysis.embedding import embed_texts
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.analysis.reduce import PLACE_DIMS, cosine_knn
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade

Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def banking77(data: Path) -> tuple[list[str], np.ndarray]:
    rows: dict[str, str] = {}
    for split in ("train", "test"):
        with open(data / "banking77" / f"{split}.csv", newline="") as f:
            for r in csv.DictReader(f):
                rows.setdefault(r["text"], r["category"])
    texts = sorted(rows)
    intents = sorted(set(rows.values()))
    return texts, np.array([intents.index(rows[t]) for t in texts])


def knn_vote(vectors: np.ndarray, kept: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    rest = np.setdiff1d(np.arange(len(vectors)), kept)
    return vote(labels, nearest_clustered(vectors[rest], vectors[kept]), n)


def pca_vote(vectors: np.ndarray, kept: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    mean = vectors[kept].mean(axis=0)
    _, _, vt = np.linalg.svd(vectors[kept][:20_000] - mean, full_matrices=False)
    projected = (vectors - mean) @ vt[:PLACE_DIMS].T
    projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
    return knn_vote(projected.astype(np.float32), kept, labels, n)


def nearest_one(vectors: np.ndarray, kept: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    rest = np.setdiff1d(np.arange(len(vectors)), kept)
    index, _ = cosine_knn(vectors[rest], vectors[kept], 1)
    return np.asarray(labels[index[:, 0]])


def centroid(vectors: np.ndarray, kept: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    rest = np.setdiff1d(np.arange(len(vectors)), kept)
    centres = np.vstack([vectors[kept][labels == c].mean(axis=0) for c in range(n)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return np.asarray((vectors[rest] @ centres.T).argmax(axis=1))


RULES: dict[str, Rule] = {
    "vote of 15 nearest, embeddings (product)": knn_vote,
    "vote of 15 nearest, 64-d PCA": pca_vote,
    "nearest clustered text": nearest_one,
    "nearest centroid": centroid,
}


def cluster(vectors: np.ndarray, seed: int) -> tuple[float, Clustering, object]:
    started = time.perf_counter()
    reduction, clustering = cluster_embeddings(vectors, Settings(analysis_seed=seed))
    return time.perf_counter() - started, clustering, reduction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--store", default="/tmp/llmscope-speed.db")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--fractions", default="0.2,0.5")
    args = parser.parse_args()
    texts, intents = banking77(Path(args.data))
    settings = Settings(database_url=f"sqlite:///{args.store}", embedding_backend=args.backend)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with Session(engine) as session:
        vectors = embed_texts(session, texts, encoder=encoder_for(settings), progress=True)
    engine.dispose()
    n = len(texts)
    print(f"Banking77: {n} distinct queries, 77 intents, {args.backend} vectors ({load()})")

    seconds, full, _ = cluster(vectors, 42)
    again_s, again, _ = cluster(vectors, 43)
    print(
        f"everything clustered: {full.n_clusters} clusters in {seconds:.0f}s; "
        f"NMI {normalized_mutual_info_score(intents, full.labels):.3f} "
        f"ARI {adjusted_rand_score(intents, full.labels):.3f} against the intents ({load()})"
    )
    print(
        f"floor, everything again with seed 43: {again.n_clusters} clusters, "
        f"ARI {adjusted_rand_score(full.labels, again.labels):.3f} to seed 42 ({load()})"
    )
    rng = np.random.default_rng(0)
    for fraction in (float(f) for f in args.fractions.split(",")):
        kept = np.sort(rng.choice(n, round(n * fraction), replace=False))
        rest = np.setdiff1d(np.arange(n), kept)
        print(f"\nclustered fraction {fraction:.0%}: {len(kept)} texts kept, {len(rest)} assigned")
        print("1. the rule alone (held-out texts given back their own cluster):")
        for name, rule in RULES.items():
            started = time.perf_counter()
            got = rule(vectors, kept, full.labels[kept], full.n_clusters)
            took = time.perf_counter() - started
            print(f"   {name:42} {(got == full.labels[rest]).mean():.1%} ({took:.2f}s, {load()})")
        seconds, part, reduction = cluster(vectors[kept], 42)
        started = time.perf_counter()
        _, extended = assign_rest(vectors, kept, reduction, part)  # type: ignore[arg-type]
        took = time.perf_counter() - started
        labels = extended.labels
        print(
            f"2. end to end: the fraction clustered in {seconds:.0f}s ({part.n_clusters} "
            f"clusters), the rest assigned in {took:.2f}s; ARI to everything clustered "
            f"{adjusted_rand_score(full.labels, labels):.3f} over all texts, "
            f"{adjusted_rand_score(full.labels[rest], labels[rest]):.3f} over the assigned; "
            f"against the intents NMI {normalized_mutual_info_score(intents, labels):.3f} "
            f"ARI {adjusted_rand_score(intents, labels):.3f} ({load()})"
        )


if __name__ == "__main__":
    main()
