"""Drift and thumbs-down detection on CLINC150 scenarios, before and after tree testing.

Two scenarios per seed, built from real CLINC150 queries (80 intents drawn once):

- ``strong`` (the original): 40 intents in the baseline, 60 queries per intent and window;
  3 new, 3 grown x3, 3 shrunk /5, 2 vanished; 3 intents with 60% thumbs-down against 8%, half
  of the current window rated.
- ``weak`` (the tree testing scenario): 35 queries per intent and window, ~60% of answers rated in *both*
  windows (about 20 ratings per intent and window), thumbs-down 40% against 6% (in both
  windows); 3 new, 3 grown x3, 3 shrunk /4, 2 vanished, 3 hot; and the hot and new intents
  are chosen next to a similar baseline intent (nearest centroid), so that merges happen.
- ``null``: 40 intents, each record's window drawn at random, thumbs 6% everywhere.

A planted change is *found* when a flagged group (a cluster, a sub-cluster, or the novel
group) holds at least half of the intent's records and carries the right flag: drift kind
new/grew for a new intent (a new intent inside a cluster with other baseline traffic can only
grow), grew, shrank, vanished/shrank for a vanished one; hotspot for a hot intent. A flag is
*false* when planted intents of that kind make up less than 30% of the flagged group.
*before* is the previous decision on the same clustering (the cut only, hotspots on the
current window's ratings, alpha/3 per family); *gate* is the tree procedure's first version
(own test and nodes combined into one Bonferroni gate, ``previous_decision.bonferroni_gate``)
on the same clustering; *after* is ``pipeline.analyse`` as it runs now.

    python benchmarks/analysis_drift.py [--data ../shared/data] [--seeds 10] [--first-seed 0]
        [--scenarios weak,strong,null] [--cache F.npz] [--backend torch]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from previous_decision import bonferroni_gate, previous_decision  # sibling benchmarks module

from llmscope.analysis import pipeline
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.pipeline import RunResult, Verdicts, analyse
from llmscope.config import Settings

KINDS = ("new", "grew", "shrank", "vanished", "hot")
RIGHT = {
    "new": {"new", "grew"},
    "grew": {"grew"},
    "shrank": {"shrank"},
    "vanished": {"vanished", "shrank"},
}
STRONG = {"per": 60, "grow": 3, "shrink": 5, "rated": 0.5, "hot": 0.6, "calm": 0.08}
WEAK = {"per": 35, "grow": 3, "shrink": 4, "rated": 0.6, "hot": 0.4, "calm": 0.06}


def scenario(
    rng: np.random.Generator,
    intents: list[str],
    pool: dict[str, list[str]],
    centroid: dict[str, np.ndarray],
    shape: dict[str, float] | None,
) -> tuple[list[tuple[str, str, bool]], list[bool | None], dict[str, str]]:
    """Rows (text, intent, is_current), thumbs, and the planted kind of each changed intent."""
    order = list(rng.permutation(intents))
    base, spare = order[:40], order[40:]
    p = shape or WEAK
    per = int(p["per"])
    plan: dict[str, str] = {}
    if shape is not None:
        rest = list(rng.permutation(base))
        if shape is WEAK:  # hot and new intents next to a similar baseline intent

            def nearest(to: str, among: list[str]) -> str:
                return max(among, key=lambda i: float(centroid[i] @ centroid[to]))

            anchors = rest[:5]
            rest = rest[5:]
            hot = []
            for a in anchors[:3]:
                h = nearest(a, [i for i in rest if i not in hot])
                hot.append(h)
            new = []
            for a in anchors[3:5]:
                new.append(nearest(a, [i for i in spare if i not in new]))
            new.append(next(i for i in spare if i not in new))
            rest = [i for i in rest if i not in hot]
        else:
            hot, new, rest = rest[:3], spare[:3], rest[3:]
        plan.update(dict.fromkeys(new, "new"))
        plan.update(dict.fromkeys(rest[:3], "grew"))
        plan.update(dict.fromkeys(rest[3:6], "shrank"))
        plan.update(dict.fromkeys(rest[6:8], "vanished"))
        plan.update(dict.fromkeys(hot, "hot"))
    rows: list[tuple[str, str, bool]] = []
    for intent in base + [i for i, k in plan.items() if k == "new"]:
        texts = pool[intent]
        if shape is None:
            rows += [(t, intent, bool(rng.random() < 0.5)) for t in rng.choice(texts, 2 * per)]
            continue
        kind = plan.get(intent)
        n_base = 0 if kind == "new" else per
        n_cur = {"new": per, "grew": per * int(p["grow"]), "shrank": per // int(p["shrink"]),
                 "vanished": 0}.get(kind or "", per)  # fmt: skip
        rows += [(t, intent, False) for t in rng.choice(texts, n_base)]
        rows += [(t, intent, True) for t in rng.choice(texts, n_cur)]
    down: list[bool | None] = []
    for _, intent, current in rows:
        rated = rng.random() < p["rated"] if (current or shape is not STRONG) else False
        rate = p["hot"] if plan.get(intent) == "hot" else p["calm"]
        down.append(bool(rng.random() < rate) if rated else None)
    return rows, down, plan


def previous(result: RunResult, is_current: np.ndarray, down: list[bool | None], settings):
    """The decision before tree testing, on the same clusters (``previous_decision.py``)."""
    top = [c for c in result.clusters if c.parent is None]
    labels = np.full(len(is_current), -1)
    for c in top:
        labels[c.members] = c.id
    drift, spots = previous_decision(labels, len(top), is_current, down, settings)
    return [
        (c.members, d.kind if d.flagged else None, h.flagged)
        for c, d, h in zip(top, drift, spots, strict=True)
    ]


def gate(verdicts: Verdicts, labels: np.ndarray, context: dict[str, Any]):
    """The same groups as ``now`` from the first tree procedure's verdicts."""
    groups = [
        (np.flatnonzero(labels == c), d.kind if d.flagged else None, h.flagged)
        for c, (d, h) in enumerate(zip(verdicts.drift, verdicts.hotspots, strict=True))
    ]
    tree, micro = context["tree"], context["micro"]
    for s in verdicts.subclusters:
        members = np.flatnonzero(np.isin(micro, tree.leaves[s.node]))
        groups.append((members, s.drift.kind if s.drift.flagged else None, s.hotspot.flagged))
    novel = context["novel"]
    if verdicts.novel is not None and novel is not None and novel.any():
        kind = verdicts.novel.kind if verdicts.novel.flagged else None
        groups.append((np.flatnonzero(novel), kind, False))
    return groups


def now(result: RunResult) -> list[tuple[np.ndarray, str | None, bool]]:
    groups = [
        (c.members, c.drift.kind if c.drift and c.drift.flagged else None,
         bool(c.hotspot and c.hotspot.flagged))
        for c in result.clusters
    ]  # fmt: skip
    g = result.novel
    if g is not None and g.drift is not None:
        groups.append((g.members, g.drift.kind if g.drift.flagged else None, False))
    return groups


def score(groups, rows, plan) -> Counter:
    """Found per kind and false flags, for one decision on one scenario."""
    intent_of = np.array([r[1] for r in rows])
    out: Counter = Counter()
    for intent, kind in plan.items():
        mine = intent_of == intent
        need = mine.sum() / 2
        out[f"{kind}_n"] += 1
        for members, drift, hot in groups:
            held = mine[members].sum()
            if held < need or held == 0:
                continue
            if (kind == "hot" and hot) or (kind != "hot" and drift in RIGHT[kind]):
                out[kind] += 1
                break
    for members, drift, hot in groups:
        planted = Counter(plan.get(i) for i in intent_of[members])
        if drift and sum(planted[k] for k in RIGHT) < 0.3 * len(members):
            out["false_drift"] += 1
        if hot and planted["hot"] < 0.3 * len(members):
            out["false_hot"] += 1
    return out


_vectors: dict[str, np.ndarray] = {}


def embed(encoder: Any, texts: list[str], cache: Path | None) -> None:
    todo = [t for t in dict.fromkeys(texts) if t not in _vectors]
    if todo:
        encoded = encoder.encode(todo)
        _vectors.update(zip(todo, encoded, strict=True))
        if cache:
            keys = list(_vectors)
            np.savez(cache, texts=np.array(keys), vectors=np.vstack([_vectors[k] for k in keys]))


def run(settings: Settings, rows, down) -> tuple[RunResult, np.ndarray, list]:
    """The job's analysis and, on the same clustering, the first tree procedure's groups."""
    seen: list = []
    job_tests = pipeline.window_tests

    def both(labels, n_clusters, vectors, is_current, down, settings, **context):
        with bonferroni_gate():
            earlier = job_tests(labels, n_clusters, vectors, is_current, down, settings, **context)
        seen.append(gate(earlier, labels, context))
        return job_tests(labels, n_clusters, vectors, is_current, down, settings, **context)

    texts = sorted({t for t, _, _ in rows})
    index = {t: i for i, t in enumerate(texts)}
    embeddings = np.vstack([_vectors[t] for t in texts])
    text_index = np.array([index[t] for t, _, _ in rows])
    is_current = np.array([c for _, _, c in rows])
    records = [{"id": str(i)} for i in range(len(rows))]
    pipeline.window_tests = both
    try:
        result = analyse(records, texts, embeddings, text_index, is_current, down, settings)
    finally:
        pipeline.window_tests = job_tests
    return result, is_current, seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first..first+N-1 (10: held-out ones)"
    )
    parser.add_argument("--scenarios", default="weak,strong,null")
    parser.add_argument("--cache", help="an .npz file keeping the embeddings across runs")
    parser.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnx", "onnx-int8", "onnx-int8-mixed"),
        help="the embedding backend (give each backend its own --cache)",
    )
    args = parser.parse_args()
    data = json.loads((Path(args.data) / "clinc150" / "data_full.json").read_text())
    pool: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        pool.setdefault(intent, []).append(text)
    intents = sorted(np.random.default_rng(2024).choice(sorted(pool), 80, replace=False))
    settings = Settings(database_url="sqlite://")
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        saved = np.load(cache)
        _vectors.update(zip(saved["texts"].tolist(), saved["vectors"], strict=True))
    with tempfile.TemporaryDirectory() as workdir:  # where an onnx backend exports the model
        encoder = encoder_for(
            Settings(embedding_backend=args.backend, data_dir=Path(workdir) / "data")
        )
        embed(encoder, [t for i in intents for t in pool[i]], cache)
    centroid = {}
    for i in intents:
        c = np.mean([_vectors[t] for t in pool[i]], axis=0)
        centroid[i] = c / np.linalg.norm(c)

    print(
        f"load average at start {os.getloadavg()[0]:.1f}; "
        f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}"
    )
    for name in args.scenarios.split(","):
        shape = {"weak": WEAK, "strong": STRONG, "null": None}[name]
        totals = {"before": Counter(), "gate": Counter(), "after": Counter()}
        null_flags = {"before": 0, "gate": 0, "after": 0}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(seed + (100 if shape is None else 0))
            started = time.perf_counter()
            rows, down, plan = scenario(rng, intents, pool, centroid, shape)
            result, is_current, earlier = run(settings, rows, down)
            line = []
            for label, groups in (("before", previous(result, is_current, down, settings)),
                                  ("gate", earlier), ("after", now(result))):  # fmt: skip
                if shape is None:
                    flags = sum(bool(d) + h for _, d, h in groups)
                    flags += result.global_drift.flagged
                    null_flags[label] += flags
                    line.append(f"{label} flags {flags}")
                    continue
                s = score(groups, rows, plan)
                totals[label].update(s)
                found = sum(s[k] for k in KINDS)
                line.append(
                    f"{label} {found}/{len(plan)} found, false {s['false_drift'] + s['false_hot']}"
                )
            subs = sum(c.parent is not None for c in result.clusters)
            novel = len(result.novel.members) if result.novel else 0
            top = sum(c.parent is None for c in result.clusters)
            print(
                f"{name} seed {seed}: {top} clusters, {subs} sub-clusters, {novel} novel; "
                + "; ".join(line)
                + f" ({time.perf_counter() - started:.0f}s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        if shape is None:
            counts = ", ".join(f"{k} {v}" for k, v in null_flags.items())
            print(f"NULL: runs {args.seeds}, flags {counts}")
            continue
        print(f"\n{name.upper()} | " + " | ".join(KINDS) + " | all | false flags per run")
        for label, t in totals.items():
            cells = " | ".join(f"{t[k]}/{t[k + '_n']}" for k in KINDS)
            found, n = sum(t[k] for k in KINDS), sum(t[k + "_n"] for k in KINDS)
            false = (t["false_drift"] + t["false_hot"]) / args.seeds
            print(f"{label} | {cells} | {found}/{n} = {found / n:.0%} | {false:.2f}")
        print()


if __name__ == "__main__":
    main()
