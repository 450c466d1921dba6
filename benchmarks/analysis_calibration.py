"""The whole report's false-alarm rate over many null splits, and what the stricter alpha costs.

CLINC150 (``--intents`` intents drawn once, ``--per-intent`` training queries each) is embedded
and clustered once with the job's pipeline. Clustering sees both windows together and never the
window labels, so one clustering serves every split. Then, ``--splits`` times:

- null: every record goes to the current window with probability 1/2, 50% of records are
  rated (both windows), thumbs-down with probability 8% everywhere, and each call gets
  per-call figures independent of its intent and window, skewed like real ones (log-normal
  latency, integer output lengths, costs at two prices, 5% errors), and 80% of records are in a
  conversation, 15% of those rephrased, independent of intent and window. A report with any
  flag (global drift, a cluster's or a sub-cluster's drift, the novel group's drift, a
  persistent or emerging hotspot, a regression, a rephrase hotspot) is a false alarm;
- planted (``--planted`` times): one intent is new (all its records current), one grew
  (current with probability 3/4), one shrank (1/4), one is a hotspot (50% thumbs-down), and
  one intent's current calls are 1.5x slower, and one intent's answers are rephrased 40% of
  the time (15% elsewhere). Found: the cluster holding most of the intent's
  records is flagged with the right kind (the slower one: its ``latency_ms`` regression).

Every split is decided by ``pipeline.window_tests``, the function the job uses, with the Ward
tree, the novel group, the regressions and the rephrase family (``now``), and, as baselines
without regressions and rephrases in the same run, by the same function with the tree
procedure's first version (``gate``: each unit's own test and nodes combined into one
Bonferroni gate, ``previous_decision.bonferroni_gate``) and by the decision before tree testing
(``previous_decision.py``: the cut only, current-window hotspots; alpha/3 per family).

    python benchmarks/analysis_calibration.py [--data ../shared/data] [--splits 300]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from clinc import clinc_intents, embed_cached  # sibling benchmarks module
from previous_decision import bonferroni_gate, previous_decision  # sibling benchmarks module
from scipy.stats import binomtest

from llmscope.analysis.keywords import representatives
from llmscope.analysis.pipeline import (
    Verdicts,
    cluster_embeddings,
    nearest_similarity,
    window_tests,
)
from llmscope.analysis.regressions import CallMetrics
from llmscope.analysis.tree import build_tree
from llmscope.config import Settings

DECISIONS = (
    "now (tree, one BH over own and below entries)",
    "gate (tree, Bonferroni gate per unit)",
    "before (cut only, current window)",
)


@dataclass
class Flags:
    """What one decision flagged, per family, and per cluster of the cut."""

    global_drift: bool
    cluster_drift: bool  # any drift flag: clusters, sub-clusters, novel
    hotspots: bool
    drift: list[tuple[bool, str]]  # per cluster: (flagged, kind)
    hot: list[bool]
    hot_below: set[int] = field(default_factory=set)  # clusters with a flagged sub-cluster
    drift_below: dict[int, set[str]] = field(default_factory=dict)
    regressions: bool = False  # any regression flagged
    slower: set[int] = field(default_factory=set)  # clusters with a flagged latency regression
    rephrases: bool = False  # any rephrase hotspot flagged
    rephrased: set[int] = field(default_factory=set)  # clusters flagged for rephrases

    @property
    def report(self) -> bool:
        return (
            self.global_drift
            or self.cluster_drift
            or self.hotspots
            or self.regressions
            or self.rephrases
        )


def calls(rng: np.random.Generator, n: int, slower: np.ndarray | None = None) -> CallMetrics:
    """Per-call figures independent of intent and window (``slower``: latency x1.5 there)."""
    tokens = rng.geometric(1 / 120, size=n).astype(float)
    price = np.where(rng.random(n) < 0.2, 6e-5, 1e-5)
    latency = rng.lognormal(mean=6.0, sigma=0.8, size=n)
    if slower is not None:
        latency[slower] *= 1.5
    return CallMetrics(
        latency_ms=latency,
        output_tokens=tokens,
        cost_usd=np.where(rng.random(n) < 0.9, tokens * price, np.nan),
        error=(rng.random(n) < 0.05).astype(float),
    )


def thumbs(rng: np.random.Generator, n: int, rate: np.ndarray) -> list[bool | None]:
    rated = rng.random(n) < 0.5
    down = rng.random(n) < rate
    return [bool(d) if r else None for r, d in zip(rated, down, strict=True)]


def rephrases(rng: np.random.Generator, n: int, rate: np.ndarray) -> list[bool | None]:
    """Rephrased or not for the 80% of records in a conversation (None: in none)."""
    kept = rng.random(n) < 0.8
    again = rng.random(n) < rate
    return [bool(r) if c else None for c, r in zip(kept, again, strict=True)]


def tree_flags(v: Verdicts) -> Flags:
    """What one run of ``window_tests`` (clusters, tree nodes, novel group) flagged."""
    below_hot = {s.cluster for s in v.subclusters if s.hotspot.flagged}
    below_drift: dict[int, set[str]] = {}
    for s in v.subclusters:
        if s.drift.flagged:
            below_drift.setdefault(s.cluster, set()).add(s.drift.kind)
    return Flags(
        global_drift=v.global_drift.flagged,
        cluster_drift=any(d.flagged for d in v.drift)
        or bool(v.novel and v.novel.flagged)
        or any(s.drift.flagged for s in v.subclusters),
        hotspots=any(h.flagged for h in v.hotspots) or bool(below_hot),
        drift=[(d.flagged, d.kind) for d in v.drift],
        hot=[h.flagged for h in v.hotspots],
        hot_below=below_hot,
        drift_below=below_drift,
        regressions=any(r.flagged for c in v.regressions for r in c.values()),
        slower={c for c, r in enumerate(v.regressions) if r["latency_ms"].flagged},
        rephrases=any(r.flagged for r in v.rephrase),
        rephrased={c for c, r in enumerate(v.rephrase) if r.flagged},
    )


def decide(
    labels, k, vectors, is_current, down, settings, tree, micro, novel, figures, again
) -> dict[str, Flags]:
    args = (labels, k, vectors, is_current, down, settings)
    context = {"tree": tree, "micro": micro, "novel": novel}
    now = tree_flags(window_tests(*args, **context, calls=figures, rephrased=again))
    with bonferroni_gate():
        gate = tree_flags(window_tests(*args, **context))
    drift, spots = previous_decision(labels, k, is_current, down, settings)
    before = Flags(
        global_drift=now.global_drift,  # the same test in every decision
        cluster_drift=any(d.flagged for d in drift),
        hotspots=any(h.flagged for h in spots),
        drift=[(d.flagged, d.kind) for d in drift],
        hot=[h.flagged for h in spots],
    )
    return dict(zip(DECISIONS, (now, gate, before), strict=True))


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

    chosen, texts, intent_of = clinc_intents(args.data, args.intents, args.per_intent, seed=2024)
    settings = Settings(database_url="sqlite://", drift_alpha=args.alpha)

    started = time.perf_counter()
    vectors = embed_cached(texts, settings.embedding_model, args.cache)
    _, clustering = cluster_embeddings(vectors, settings)
    labels, k = clustering.labels, clustering.n_clusters
    tree, micro = build_tree(clustering), clustering.micro_labels
    centroids, _ = representatives(vectors, labels)
    novel = nearest_similarity(vectors, centroids) < settings.novel_max_similarity
    home = [
        Counter(labels[intent_of == i].tolist()).most_common(1)[0][0] for i in range(len(chosen))
    ]
    print(
        f"{len(texts)} CLINC150 queries, {len(chosen)} intents -> {k} clusters "
        f"({time.perf_counter() - started:.0f}s to embed and cluster); alpha {args.alpha}; "
        f"{int(novel.sum())} novel; load average {os.getloadavg()[0]:.1f}"
    )
    context = (tree, micro, novel)

    n = len(texts)
    rng = np.random.default_rng(0)
    alarms: dict[str, Counter] = {name: Counter() for name in DECISIONS}
    started = time.perf_counter()
    for _ in range(args.splits):
        is_current = rng.random(n) < 0.5
        down = thumbs(rng, n, np.full(n, 0.08))
        figures = calls(rng, n)
        again = rephrases(rng, n, np.full(n, 0.15))
        decided = decide(labels, k, vectors, is_current, down, settings, *context, figures, again)
        for name, f in decided.items():
            alarms[name].update(
                report=f.report,
                global_drift=f.global_drift,
                cluster_drift=f.cluster_drift,
                hotspots=f.hotspots,
                regressions=f.regressions,
                rephrases=f.rephrases,
            )
    null_seconds = time.perf_counter() - started

    found: dict[str, Counter] = {name: Counter() for name in DECISIONS}
    for _ in range(args.planted):
        new, grew, shrank, hot, slow, asked = rng.choice(len(chosen), 6, replace=False)
        p_current = np.full(n, 0.5)
        p_current[intent_of == new], p_current[intent_of == grew] = 1.0, 0.75
        p_current[intent_of == shrank] = 0.25
        is_current = rng.random(n) < p_current
        down = thumbs(rng, n, np.where(intent_of == hot, 0.5, 0.08))
        figures = calls(rng, n, slower=(intent_of == slow) & is_current)
        again = rephrases(rng, n, np.where(intent_of == asked, 0.4, 0.15))
        decided = decide(labels, k, vectors, is_current, down, settings, *context, figures, again)
        for name, f in decided.items():
            for kind, intent in (("new", new), ("grew", grew), ("shrank", shrank)):
                flagged, got = f.drift[home[intent]]
                # A new intent inside a cluster with other baseline traffic can only "grow".
                right = {"new": {"new", "grew"}}.get(kind, {kind})
                below = f.drift_below.get(home[intent], set())
                found[name][kind] += (flagged and got in right) or bool(below & right)
            found[name]["hotspot"] += f.hot[home[hot]] or home[hot] in f.hot_below
            found[name]["global"] += f.global_drift
            found[name]["slower"] += home[slow] in f.slower
            found[name]["rephrased"] += home[asked] in f.rephrased

    print(f"\nnull: {args.splits} random splits ({null_seconds:.0f}s, three decisions)")
    print(
        "| decision | whole report (95% CI) | global drift | drift (all groups) | hotspots "
        "| regressions | rephrases |"
    )
    print("|---|---|---|---|---|---|---|")
    families = ("global_drift", "cluster_drift", "hotspots", "regressions", "rephrases")
    for name, a in alarms.items():
        fams = " | ".join(f"{a[f]}/{args.splits}" for f in families)
        print(f"| {name} | {interval(a['report'], args.splits)} | {fams} |")
    print(f"\nplanted: {args.planted} scenarios, recall")
    print(
        "| decision | new | grew x3 | shrank /3 | hotspot 50% vs 8% | global drift | latency x1.5 "
        "| rephrased 40% vs 15% |"
    )
    print("|---|---|---|---|---|---|---|---|")
    kinds = ("new", "grew", "shrank", "hotspot", "global", "slower", "rephrased")
    for name, f in found.items():
        cells = " | ".join(f"{f[kind]}/{args.planted}" for kind in kinds)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
