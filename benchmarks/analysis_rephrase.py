"""Rephrase hotspots found with no ratings at all, and what the rephrase step costs.

CLINC150 training queries (``--intents`` intents drawn once, ``--per-intent`` each) are embedded
and clustered once with the job's pipeline (``pipeline.cluster_embeddings``). Then, ``--seeds``
times, a run's traffic is built from them as sessions, and not one record is rated:

- ``--sessions`` sessions, each in the baseline week or the current day (half each), open with
  a query of a random intent; in ``--follow-up`` of them (0.5) a second turn comes 10 s to
  5 min later. For ``--planted`` intents drawn per seed, the second turn is the same question
  in other words (another query of the same intent, a real paraphrase) with probability
  ``--hot`` (0.4); for every other intent with ``--calm`` (0.1); otherwise it is a query of a
  random other intent (a topic change, which the detection may misread as a rephrase).
- Rephrases are detected with the defaults (``implicit.detect_turns`` with the records'
  clusters) and tested per cluster (``implicit.rephrase_tests``, at the implicit family's fifth
  of alpha): the functions the job runs. Found: the cluster holding most of a planted intent's
  queries is flagged. False flag: a flagged cluster that holds most of no planted intent's
  queries.
- Baseline, on the same traffic in the same run: the plain threshold for every next turn
  (``LLMSCOPE_REPHRASE_CLUSTER_RATIO`` = 1, what the detection did before the same-cluster
  allowance).

Target: >= 95% of planted hotspots found over the seeds, <= 1 false flag per run.
``--planted 0`` is a null: every intent's answers are rephrased alike, so every flag is false.

Cost: the step (detection on the run's records and embeddings, plus the tests) is timed on
``--cost-records`` records (default 100,000: sessions drawn from the same queries) and set
against a whole analysis of ``--run-records`` of them (``pipeline.analyse``, embeddings cached
as in a real run: reduce, cluster, keywords and every test, the step included), timed in the
same process.

    python benchmarks/analysis_rephrase.py [--data ../shared/data] [--seeds 20]
        [--cache /tmp/clinc-rephrase.npy] [--output benchmarks/results/analysis_rephrase.txt]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from clinc import clinc_intents, embed_cached  # sibling benchmarks module

from llmscope.analysis import stats
from llmscope.analysis.implicit import detect_turns, rephrase_tests, turns_of_records
from llmscope.analysis.pipeline import analyse, cluster_embeddings
from llmscope.config import Settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = 86_400.0


class Tally:
    """One detection rule's results over the seeds."""

    def __init__(self) -> None:
        self.found = self.planted = 0
        self.false: list[int] = []
        self.hot: list[float] = []
        self.calm: list[float] = []

    def add(self, found: int, planted: int, false: int, hot: float, calm: float) -> None:
        self.found += found
        self.planted += planted
        self.false.append(false)
        self.hot.append(hot)
        self.calm.append(calm)

    def row(self) -> str:
        if not self.planted:  # a null run (--planted 0): every flag is false
            runs = sum(f > 0 for f in self.false)
            return (
                f"- | {sum(self.false)}, {max(self.false)} (runs with any: {runs}/"
                f"{len(self.false)}) | - / {np.mean(self.calm):.1%}"
            )
        return (
            f"{self.found}/{self.planted} = {self.found / self.planted:.1%} | {sum(self.false)}, "
            f"{max(self.false)} | {np.mean(self.hot):.1%} / {np.mean(self.calm):.1%}"
        )


def sessions(
    rng: np.random.Generator,
    by_intent: list[np.ndarray],
    n_sessions: int,
    rephrase_rate: np.ndarray,
    follow_up: float,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(conversation keys, seconds since the baseline's start, text index, is current)."""
    keys: list[str] = []
    seconds: list[float] = []
    texts: list[int] = []
    current: list[bool] = []
    n_intents = len(by_intent)
    for s in range(n_sessions):
        now = rng.random() < 0.5
        start = 7 * DAY + rng.uniform(0, DAY - 600) if now else rng.uniform(0, 7 * DAY - 600)
        intent = int(rng.integers(n_intents))
        first = int(rng.choice(by_intent[intent]))
        keys.append(f"s:{s}")
        seconds.append(start)
        texts.append(first)
        current.append(now)
        if rng.random() >= follow_up:
            continue
        if rng.random() < rephrase_rate[intent]:
            second = int(rng.choice(by_intent[intent][by_intent[intent] != first]))
        else:
            other = (intent + 1 + int(rng.integers(n_intents - 1))) % n_intents
            second = int(rng.choice(by_intent[other]))
        keys.append(f"s:{s}")
        seconds.append(start + rng.uniform(10, 300))
        texts.append(second)
        current.append(now)
    return keys, np.array(seconds), np.array(texts), np.array(current, dtype=bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--intents", type=int, default=40)
    parser.add_argument("--per-intent", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--follow-up", type=float, default=0.5)
    parser.add_argument("--planted", type=int, default=3)
    parser.add_argument("--hot", type=float, default=0.4)
    parser.add_argument("--calm", type=float, default=0.1)
    parser.add_argument("--cost-records", type=int, default=100_000)
    parser.add_argument("--run-records", type=int, default=20_000)
    parser.add_argument("--cache", help="an .npy file to keep the embeddings in across runs")
    parser.add_argument("--output", help="also write what is printed to this results file")
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    chosen, texts, intent_of = clinc_intents(args.data, args.intents, args.per_intent, seed=7)
    by_intent = [np.flatnonzero(intent_of == i) for i in range(len(chosen))]
    settings = Settings(database_url="sqlite://")
    level = stats.split_alpha(settings.drift_alpha).implicit

    started = time.perf_counter()
    vectors = embed_cached(texts, settings.embedding_model, args.cache)
    _, clustering = cluster_embeddings(vectors, settings)
    text_labels, k = clustering.labels, clustering.n_clusters
    home = [Counter(text_labels[m].tolist()).most_common(1)[0][0] for m in by_intent]
    say(
        f"{len(texts)} CLINC150 queries, {len(chosen)} intents -> {k} clusters "
        f"({time.perf_counter() - started:.0f}s to embed and cluster); threshold "
        f"{settings.rephrase_min_similarity}, window {settings.rephrase_window_seconds:g}s, "
        f"implicit family level {level:g}, same-cluster ratio "
        f"{settings.rephrase_cluster_ratio:g}; load average {os.getloadavg()[0]:.1f}"
    )

    ratio = settings.rephrase_cluster_ratio
    rules = {"plain threshold (ratio 1)": 1.0, f"same-cluster ratio {ratio:g}": ratio}
    tally = {name: Tally() for name in rules}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        planted = rng.choice(len(chosen), args.planted, replace=False)
        rate = np.full(len(chosen), args.calm)
        rate[planted] = args.hot
        keys, seconds, text_index, is_current = sessions(
            rng, by_intent, args.sessions, rate, args.follow_up
        )
        labels = text_labels[text_index]
        targets = {home[i] for i in planted}
        hot = np.isin(intent_of[text_index], planted)
        for name, rule_ratio in rules.items():
            turns = detect_turns(
                keys,
                seconds,
                text_index,
                vectors,
                window_seconds=settings.rephrase_window_seconds,
                min_similarity=settings.rephrase_min_similarity,
                labels=labels,
                cluster_ratio=rule_ratio,
            )
            verdicts = rephrase_tests(
                labels, k, is_current, turns.outcomes(), settings, level=level
            )
            flagged = {c for c, v in enumerate(verdicts) if v.flagged}
            found_rate = tuple(
                float(turns.rephrased[part].mean()) if part.any() else float("nan")
                for part in (hot, ~hot)
            )
            tally[name].add(
                len(targets & flagged), len(targets), len(flagged - targets), *found_rate
            )
    say(
        f"\n{args.seeds} runs of {args.sessions} sessions, {args.planted} planted intents each "
        f"(second turn a rephrase {args.hot:.0%} vs {args.calm:.0%}), no ratings"
    )
    say("| detection | found (planted clusters flagged) | false flags: total, worst run | "
        "records detected rephrased: planted / other intents |")  # fmt: skip
    say("|---|---|---|---|")
    for name, t in tally.items():
        say(f"| {name} | {t.row()} |")

    if args.cost_records > 0:
        cost(args, chosen, by_intent, texts, vectors, text_labels, k, settings, level, say)
    say(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")


def cost(
    args: argparse.Namespace,
    chosen: list[str],
    by_intent: list[np.ndarray],
    texts: list[str],
    vectors: np.ndarray,
    text_labels: np.ndarray,
    k: int,
    settings: Settings,
    level: float,
    say: Callable[[str], None],
) -> None:
    """The step on ``--cost-records`` records, and a whole analysis of ``--run-records``."""

    def traffic(n: int, seed: int) -> tuple[list[dict], np.ndarray]:
        rng = np.random.default_rng(seed)
        rate = np.full(len(chosen), args.calm)
        rate[: args.planted] = args.hot
        keys, seconds, text_index, is_current = sessions(
            rng, by_intent, int(n / (1 + args.follow_up)) + 1, rate, args.follow_up
        )
        order = np.argsort(seconds, kind="stable")[:n]
        start = NOW - timedelta(days=8)
        records = [
            {
                "id": f"r{j}",
                "timestamp": start + timedelta(seconds=float(seconds[i])),
                "session_id": keys[i][2:],
                "user_id": None,
                "window": "current" if is_current[i] else "baseline",
                "status": "ok",
            }
            for j, i in enumerate(order)
        ]
        return records, text_index[order]

    records, text_index = traffic(args.cost_records, 100)
    is_current = np.array([r["window"] == "current" for r in records])
    labels = text_labels[text_index]
    started = time.perf_counter()
    turns = turns_of_records(records, text_index, vectors, settings, labels)
    rephrase_tests(labels, k, is_current, turns.outcomes(), settings, level=level)
    step_big = time.perf_counter() - started
    load_big = os.getloadavg()[0]

    records, text_index = traffic(args.run_records, 101)
    is_current = np.array([r["window"] == "current" for r in records])
    labels = text_labels[text_index]
    started = time.perf_counter()
    turns = turns_of_records(records, text_index, vectors, settings, labels)
    rephrase_tests(labels, k, is_current, turns.outcomes(), settings, level=level)
    step_small = time.perf_counter() - started
    # a run's texts are its records' texts: the queries no record asked are left out
    used, run_index = np.unique(text_index, return_inverse=True)
    run_texts = [texts[t] for t in used]
    started = time.perf_counter()
    analyse(records, run_texts, vectors[used], run_index, is_current, [None] * len(records),
            settings)  # fmt: skip
    whole_small = time.perf_counter() - started
    say(f"\ncost (load average {load_big:.1f} -> {os.getloadavg()[0]:.1f})")
    say("| records | rephrase step | whole analysis (embeddings cached) | step share |")
    say("|---|---|---|---|")
    say(
        f"| {len(records):,} | {step_small:.2f} s | {whole_small:.1f} s | "
        f"{step_small / whole_small:.1%} |"
    )
    whole_big = whole_small * args.cost_records / len(records)
    say(
        f"| {args.cost_records:,} | {step_big:.2f} s | ~{whole_big:.0f} s (linear from the row "
        f"above) | {step_big / whole_big:.1%} |"
    )


if __name__ == "__main__":
    main()
