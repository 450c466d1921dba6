"""The whole report's false-alarm rate over many null splits, and what the stricter alpha costs.

CLINC150 (``--intents`` intents drawn once, ``--per-intent`` training queries each) is embedded
and clustered once with the job's pipeline. Clustering sees both windows together and never the
window labels, so one clustering serves every split. Then, ``--splits`` times:

- null: every record goes to the current window with probability 1/2, 50% of current records
  are rated, thumbs-down with probability 8% everywhere. A report with any flag (global drift,
  a cluster's drift, a hotspot) is a false alarm;
- planted (``--planted`` times): one intent is new (all its records current), one grew
  (current with probability 3/4), one shrank (1/4), one is a hotspot (50% thumbs-down).
  Found: the cluster holding most of the intent's records is flagged with the right kind.

Every split is decided by ``pipeline.window_tests``, the function the job uses, under the
allocation in ``stats.split_alpha`` (alpha/3 per family) and, as the baseline in the same run,
the previous one (alpha/2 global, alpha/2 per-cluster drift, a separate 0.05 for hotspots).

    python benchmarks/analysis_calibration.py [--data ../shared/data] [--splits 300]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
from scipy.stats import binomtest

from llmscope.analysis import stats
from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import Verdicts, cluster_embeddings, window_tests
from llmscope.config import Settings


def previous_split(alpha: float) -> stats.AlphaSplit:
    """The allocation before the report-level bound: drift halves alpha, hotspots had 0.05."""
    return stats.AlphaSplit(global_drift=alpha / 2, cluster_drift=alpha / 2, hotspots=0.05)


ALLOCATIONS: dict[str, Callable[[float], stats.AlphaSplit]] = {
    "alpha/3 per family (now)": stats.split_alpha,
    "previous (a/2 + a/2, hotspots 0.05)": previous_split,
}


def thumbs(rng: np.random.Generator, n: int, rate: np.ndarray) -> list[bool | None]:
    rated = rng.random(n) < 0.5
    down = rng.random(n) < rate
    return [bool(d) if r else None for r, d in zip(rated, down, strict=True)]


def decide(labels, k, vectors, is_current, down, settings) -> dict[str, Verdicts]:
    out = {}
    for name, split in ALLOCATIONS.items():
        with mock.patch.object(stats, "split_alpha", split):
            out[name] = window_tests(labels, k, vectors, is_current, down, settings)
    return out


def interval(hits: int, n: int) -> str:
    ci = binomtest(hits, n).proportion_ci(0.95, method="exact")
    return f"{hits}/{n} = {hits / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--intents", type=int, default=60)
    parser.add_argument("--per-intent", type=int, default=100)
    parser.add_argument("--splits", type=int, default=300)
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--cache", help="an .npy file to keep the embeddings in across runs")
    args = parser.parse_args()

    data = json.loads((Path(args.data) / "clinc150" / "data_full.json").read_text())
    pool: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        pool.setdefault(intent, []).append(text)
    chosen = sorted(np.random.default_rng(2024).choice(sorted(pool), args.intents, replace=False))
    texts = [t for i in chosen for t in pool[i][: args.per_intent]]
    intent_of = np.array([n for n, i in enumerate(chosen) for _ in pool[i][: args.per_intent]])
    settings = Settings(database_url="sqlite://", drift_alpha=args.alpha)

    started = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        vectors = np.load(cache)
    else:
        model = load_model(settings.embedding_model)
        vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
        if cache:
            np.save(cache, vectors)
    _, clustering = cluster_embeddings(vectors, settings)
    labels, k = clustering.labels, clustering.n_clusters
    home = [
        Counter(labels[intent_of == i].tolist()).most_common(1)[0][0] for i in range(len(chosen))
    ]
    print(
        f"{len(texts)} CLINC150 queries, {len(chosen)} intents -> {k} clusters "
        f"({time.perf_counter() - started:.0f}s to embed and cluster); alpha {args.alpha}"
    )

    n = len(texts)
    rng = np.random.default_rng(0)
    alarms = {name: Counter() for name in ALLOCATIONS}
    started = time.perf_counter()
    for _ in range(args.splits):
        is_current = rng.random(n) < 0.5
        down = thumbs(rng, n, np.full(n, 0.08))
        for name, v in decide(labels, k, vectors, is_current, down, settings).items():
            alarms[name].update(
                report=v.flagged,
                global_drift=v.global_drift.flagged,
                cluster_drift=any(d.flagged for d in v.drift),
                hotspots=any(h.flagged for h in v.hotspots),
            )
    null_seconds = time.perf_counter() - started

    found = {name: Counter() for name in ALLOCATIONS}
    for _ in range(args.planted):
        new, grew, shrank, hot = rng.choice(len(chosen), 4, replace=False)
        p_current = np.full(n, 0.5)
        p_current[intent_of == new], p_current[intent_of == grew] = 1.0, 0.75
        p_current[intent_of == shrank] = 0.25
        is_current = rng.random(n) < p_current
        down = thumbs(rng, n, np.where(intent_of == hot, 0.5, 0.08))
        for name, v in decide(labels, k, vectors, is_current, down, settings).items():
            for kind, intent in (("new", new), ("grew", grew), ("shrank", shrank)):
                drift = v.drift[home[intent]]
                # A new intent inside a cluster with other baseline traffic can only "grow".
                right = {"new": {"new", "grew"}}.get(kind, {kind})
                found[name][kind] += drift.flagged and drift.kind in right
            found[name]["hotspot"] += v.hotspots[home[hot]].flagged
            found[name]["global"] += v.global_drift.flagged

    print(f"\nnull: {args.splits} random splits ({null_seconds:.0f}s, both allocations)")
    print("| allocation | whole report (95% CI) | global drift | cluster drift | hotspots |")
    print("|---|---|---|---|---|")
    for name, a in alarms.items():
        fams = " | ".join(
            f"{a[f]}/{args.splits}" for f in ("global_drift", "cluster_drift", "hotspots")
        )
        print(f"| {name} | {interval(a['report'], args.splits)} | {fams} |")
    print(f"\nplanted: {args.planted} scenarios, recall")
    print("| allocation | new | grew x3 | shrank /3 | hotspot 50% vs 8% | global drift |")
    print("|---|---|---|---|---|---|")
    for name, f in found.items():
        cells = " | ".join(
            f"{f[kind]}/{args.planted}" for kind in ("new", "grew", "shrank", "hotspot", "global")
        )
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
