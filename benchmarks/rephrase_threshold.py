"""Which cosine similarity makes a next question a *rephrase*: measured on real paraphrases.

Banking77 and CLINC150 label each query with an intent: two different queries of one intent
are two wordings of one question (what a user types when the answer failed them), two
queries of different intents are a move to another question. For each data set, ``--pairs``
same-intent pairs and as many different-intent pairs are drawn (seeded), embedded with the
analysis' model (all-MiniLM-L6-v2, normalised, so the dot product is the cosine), and for each
threshold the table prints:

- ``recall``: the share of same-intent pairs at or above it (rephrases found);
- ``false``: the share of different-intent pairs at or above it (topic changes taken for
  rephrases); Banking77 is one domain (cards, transfers, top-ups), so its different-intent
  pairs are the hard case: neighbouring questions of the same product;
- ``precision``: with as many rephrases as topic changes among next turns (1:1), and with one
  rephrase per four topic changes (1:4, nearer real traffic).

The default ``LLMSCOPE_REPHRASE_MIN_SIMILARITY`` is the lowest threshold whose 1:4 precision
is at least ``--precision`` (0.9) on every data set: a false rephrase is a topic change read as
a failed answer, and it is likelier between neighbouring topics, so precision is held where
rephrases are the rarer kind of next turn.

**The same-cluster ratio.** Each data set's queries are also clustered with the job's pipeline
(``pipeline.cluster_embeddings``, default settings), and the rule the job runs is scored at the
default threshold for each ratio in ``RATIOS``: a pair is a rephrase when its cosine is at least
the threshold, or at least ``ratio`` times it with both texts in one cluster (ratio 1: the plain
threshold, the baseline; ratio 0: any next turn in the cluster). The table adds the share of
each kind of pair that shares a cluster. ``LLMSCOPE_REPHRASE_CLUSTER_RATIO`` is the highest
ratio that recovers at least ``--recall-share`` (0.9) of the recall the allowance can add
(ratio 1 to ratio 0) on every data set: below it recall hardly grows while the topic changes
taken for rephrases still do.

    python benchmarks/rephrase_threshold.py [--data ../shared/data] [--pairs 20000]
        [--cache-dir /tmp]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.config import Settings

THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.91, 0.05)]
RATIOS = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0]


def precisions(recall: float, false: float) -> tuple[float, float]:
    """Precision with rephrases and topic changes 1:1 and 1:4 among next turns."""
    p1 = recall / (recall + false) if recall + false else 1.0
    p4 = recall / (recall + 4 * false) if recall + 4 * false else 1.0
    return p1, p4


def banking77(data: Path) -> tuple[list[str], list[str]]:
    with (data / "banking77" / "test.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def clinc150(data: Path) -> tuple[list[str], list[str]]:
    rows = json.loads((data / "clinc150" / "data_full.json").read_text())["test"]
    return [t for t, _ in rows], [i for _, i in rows]


def pairs(
    intents: list[str], texts: list[str], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` same-intent and ``n`` different-intent index pairs (distinct texts each)."""
    label = np.unique(np.array(intents), return_inverse=True)[1]
    by_intent = [np.flatnonzero(label == k) for k in range(label.max() + 1)]
    same, other = [], []
    while len(same) < n:
        members = by_intent[rng.integers(len(by_intent))]
        i, j = rng.choice(members, 2, replace=False)
        if texts[i] != texts[j]:
            same.append((i, j))
    while len(other) < n:
        i, j = rng.integers(len(texts), size=2)
        if label[i] != label[j]:
            other.append((i, j))
    return np.array(same), np.array(other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--precision", type=float, default=0.9)
    parser.add_argument("--recall-share", type=float, default=0.9)
    parser.add_argument("--cache-dir", help="keep each data set's embeddings here across runs")
    args = parser.parse_args()
    data = Path(args.data)
    settings = Settings(database_url="sqlite://")
    model = None
    rng = np.random.default_rng(0)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")

    chosen: list[float] = []
    ratio_ok: list[set[float]] = []
    for name, loader in (("Banking77 test", banking77), ("CLINC150 test", clinc150)):
        texts, intents = loader(data)
        started = time.perf_counter()
        cache = (
            Path(args.cache_dir) / f"{name.split()[0].lower()}-test.npy" if args.cache_dir else None
        )
        if cache is not None and cache.exists():
            vectors = np.load(cache)
        else:
            model = model or load_model(settings.embedding_model)
            vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
            if cache is not None:
                np.save(cache, vectors)
        same, other = pairs(intents, texts, args.pairs, rng)
        s = np.einsum("ij,ij->i", vectors[same[:, 0]], vectors[same[:, 1]])
        o = np.einsum("ij,ij->i", vectors[other[:, 0]], vectors[other[:, 1]])
        print(
            f"\n{name}: {len(texts)} queries, {len(set(intents))} intents, {args.pairs} pairs "
            f"of each kind ({time.perf_counter() - started:.0f}s); median cosine same-intent "
            f"{np.median(s):.2f}, different-intent {np.median(o):.2f}"
        )
        print("| threshold | recall (same intent) | false (different intent) | precision 1:1 "
              "| precision 1:4 |")  # fmt: skip
        print("|---|---|---|---|---|")
        lowest = None  # at 1:4
        for t in THRESHOLDS:
            recall, false = float(np.mean(s >= t)), float(np.mean(o >= t))
            p1, p4 = precisions(recall, false)
            if lowest is None and p4 >= args.precision:
                lowest = t
            print(f"| {t:.2f} | {recall:.3f} | {false:.4f} | {p1:.3f} | {p4:.3f} |")
        print(f"lowest threshold with 1:4 precision >= {args.precision}: {lowest}")
        chosen.append(lowest if lowest is not None else 1.0)

        started = time.perf_counter()
        labels = cluster_embeddings(vectors, settings)[1].labels
        together_s = (labels[same[:, 0]] == labels[same[:, 1]]) & (labels[same[:, 0]] >= 0)
        together_o = (labels[other[:, 0]] == labels[other[:, 1]]) & (labels[other[:, 0]] >= 0)
        t = settings.rephrase_min_similarity
        print(
            f"\n{name}, the same-cluster rule at threshold {t} ({int(labels.max()) + 1} clusters, "
            f"{time.perf_counter() - started:.0f}s): same-intent pairs in one cluster "
            f"{together_s.mean():.1%}, different-intent {together_o.mean():.2%}"
        )
        print("| ratio | recall (same intent) | false (different intent) | precision 1:1 "
              "| precision 1:4 |")  # fmt: skip
        print("|---|---|---|---|---|")
        recalls: dict[float, float] = {}
        for ratio in RATIOS:
            recall = float(np.mean((s >= t) | (together_s & (s >= ratio * t))))
            false = float(np.mean((o >= t) | (together_o & (o >= ratio * t))))
            p1, p4 = precisions(recall, false)
            recalls[ratio] = recall
            print(f"| {ratio:.1f} | {recall:.3f} | {false:.4f} | {p1:.3f} | {p4:.3f} |")
        plain, most = recalls[max(RATIOS)], recalls[min(RATIOS)]
        ratio_ok.append(
            {r for r, v in recalls.items() if v - plain >= args.recall_share * (most - plain)}
        )
    print(f"\nchosen (the larger over the data sets): {max(chosen):.2f}")
    within = set.intersection(*ratio_ok)
    print(
        f"highest ratio recovering at least {args.recall_share:.0%} of the allowance's recall "
        f"gain on every data set: {max(within):.1f}"
    )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
