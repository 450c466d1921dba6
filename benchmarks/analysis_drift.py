"""Drift and thumbs-down detection on CLINC150 scenarios, and a null scenario that must be quiet.

Scenario (per seed): 40 of 60 fixed intents in the baseline; in the current window 3 new
intents appear, 3 grow (x3), 3 shrink (/5), 2 vanish, the rest are unchanged; 3 unchanged
intents get a thumbs-down rate of 60% (the others 8%). Recall: a changed intent counts as
found when the cluster holding most of its records is flagged with the right kind (hotspots:
flagged as a hotspot). False flags: flagged clusters whose majority intent did not change.
Null: the same 40 intents split at random into two windows: nothing may be flagged.

    python benchmarks/analysis_drift.py [--data ../shared/data] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from llmscope.analysis.embedding import load_model
from llmscope.analysis.pipeline import analyse
from llmscope.config import Settings

PER_INTENT = 60


def scenario(rng: np.random.Generator, intents: list[str], pool: dict[str, list[str]], null: bool):
    chosen = list(rng.choice(intents, 52, replace=False))
    base, new = chosen[:40], chosen[40:43]
    order = list(rng.permutation(base))
    grew, shrank, vanished, hot = order[:3], order[3:6], order[6:8], order[8:11]
    rows: list[tuple[str, str, bool]] = []  # (text, intent, is_current)
    for intent in base:
        texts = pool[intent]
        if null:
            for t in rng.choice(texts, 2 * PER_INTENT):
                rows.append((t, intent, bool(rng.random() < 0.5)))
            continue
        rows += [(t, intent, False) for t in rng.choice(texts, PER_INTENT)]
        n_cur = {**dict.fromkeys(grew, 3 * PER_INTENT), **dict.fromkeys(shrank, PER_INTENT // 5),
                 **dict.fromkeys(vanished, 0)}.get(intent, PER_INTENT)  # fmt: skip
        rows += [(t, intent, True) for t in rng.choice(texts, n_cur)]
    if not null:
        for intent in new:
            rows += [(t, intent, True) for t in rng.choice(pool[intent], PER_INTENT)]
    truth = {} if null else {
        **dict.fromkeys(new, "new"), **dict.fromkeys(grew, "grew"),
        **dict.fromkeys(shrank, "shrank"), **dict.fromkeys(vanished, "vanished"),
    }  # fmt: skip
    hot_set = set() if null else set(hot)
    down = []
    for _, intent, current in rows:
        rated = current and rng.random() < 0.5
        down.append(bool(rng.random() < (0.6 if intent in hot_set else 0.08)) if rated else None)
    return rows, down, truth, hot_set


_vectors: dict[str, np.ndarray] = {}


def run(model, settings, rows, down):
    texts = list(dict.fromkeys(t for t, _, _ in rows))
    index = {t: i for i, t in enumerate(texts)}
    todo = [t for t in texts if t not in _vectors]  # each text embedded once across scenarios
    if todo:
        encoded = model.encode(todo, batch_size=64, normalize_embeddings=True)
        _vectors.update(zip(todo, encoded, strict=True))
    embeddings = np.vstack([_vectors[t] for t in texts])
    text_index = np.array([index[t] for t, _, _ in rows])
    is_current = np.array([c for _, _, c in rows])
    records = [{"id": str(i)} for i in range(len(rows))]
    return analyse(records, texts, embeddings, text_index, is_current, down, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    data = json.loads((Path(args.data) / "clinc150" / "data_full.json").read_text())
    pool: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        pool.setdefault(intent, []).append(text)
    # 60 intents drawn once: every scenario picks its 52 among them (bounded embedding work).
    intents = sorted(np.random.default_rng(2024).choice(sorted(pool), 60, replace=False))
    settings = Settings(database_url="sqlite://")
    model = load_model(settings.embedding_model)

    totals = Counter()
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        rows, down, truth, hot = scenario(rng, intents, pool, null=False)
        result = run(model, settings, rows, down)
        majority = {}
        for c in result.clusters:
            counts = Counter(rows[i][1] for i in c.members)
            majority[c.id] = counts.most_common(1)[0][0]
        home = {}
        for intent in set(truth) | hot:
            where = Counter(int(result.labels[i]) for i, r in enumerate(rows) if r[1] == intent)
            home[intent] = where.most_common(1)[0][0] if where else None
        by_id = {c.id: c for c in result.clusters}
        drift_found = sum(
            1
            for intent, kind in truth.items()
            if home[intent] is not None
            and by_id[home[intent]].drift.flagged
            and by_id[home[intent]].drift.kind == kind
        )
        hot_found = sum(1 for i in hot if by_id[home[i]].hotspot.flagged)
        false_drift = sum(
            1 for c in result.clusters if c.drift.flagged and majority[c.id] not in truth
        )
        false_hot = sum(
            1 for c in result.clusters if c.hotspot.flagged and majority[c.id] not in hot
        )
        print(
            f"seed {seed}: {len(result.clusters)} clusters, "
            f"drift recall {drift_found}/{len(truth)}, "
            f"hotspot recall {hot_found}/{len(hot)}, false drift flags {false_drift}, "
            f"false hotspot flags {false_hot}, "
            f"global drift p={result.global_drift.p_value:.3g}"
            f" ({time.perf_counter() - started:.0f}s)"
        )
        totals.update(drift=drift_found, drift_n=len(truth), hot=hot_found, hot_n=len(hot),
                      false_drift=false_drift, false_hot=false_hot)  # fmt: skip

    null_flags = 0
    for seed in range(args.seeds):
        rng = np.random.default_rng(100 + seed)
        rows, down, _, _ = scenario(rng, intents, pool, null=True)
        result = run(model, settings, rows, down)
        flags = sum(c.drift.flagged + c.hotspot.flagged for c in result.clusters)
        flags += result.global_drift.flagged
        null_flags += flags
        print(
            f"null seed {seed}: {len(result.clusters)} clusters, flags {flags}, "
            f"global drift p={result.global_drift.p_value:.3g}"
        )
    print(
        f"TOTAL drift recall {totals['drift']}/{totals['drift_n']}, hotspot recall "
        f"{totals['hot']}/{totals['hot_n']}, false flags drift {totals['false_drift']} hotspot "
        f"{totals['false_hot']}; null scenario flags {null_flags} over {args.seeds} runs"
    )


if __name__ == "__main__":
    main()
