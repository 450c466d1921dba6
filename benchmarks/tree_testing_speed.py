"""Tree testing's price: one 100,000-record run with ``LLMSCOPE_TREE_TESTING`` off and on.

Issue 12's target is that testing the Ward tree below the cut (sub-clusters, the minimum-support
fallback to the node above) adds at most 20% to a 100,000-record run. This script fills one
SQLite store with ``--records`` records of real Banking77/CLINC150 questions (``--distinct``
of them, repeated over 8 days, so the default windows hold 1/8 of them as current), rates ~40%
of them with a thumb (6% down, 35% on a few planted hot intents; a few intents grow ×3 in the
current window, so the tests have something to find), fills the embedding cache, makes one
warm-up run (not counted: imports, numba compilation), then runs ``run_analysis`` alternately
with tree testing off (the baseline, the cut only) and on, for ``--rounds`` rounds in the same
process. It prints each run's wall seconds, its ``tests_s``
and how many sub-clusters it reported, then the ratio of the mean wall time on to off.
The load average (``os.getloadavg()``) is printed beside every timing.

    nice python benchmarks/tree_testing_speed.py [--data ../shared/data] [--records 100000]
        [--distinct 12000] [--rounds 2] [--store /tmp/llmscope-tree-speed.db]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
from datetime import timedelta
from pathlib import Path
from statistics import mean

from analysis_speed import NOW, fill_cache, load, timed_run  # the sibling benchmarks module
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Feedback, Record

HOT, GROWN = 10, 5  # planted intents


def labelled_questions(data: Path) -> list[tuple[str, str]]:
    """(text, intent) for every distinct Banking77 and CLINC150 question."""
    pairs: dict[str, str] = {}
    for split in ("train", "test"):
        with open(data / "banking77" / f"{split}.csv", newline="") as f:
            pairs.update((r["text"], "b77:" + r["category"]) for r in csv.DictReader(f))
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    pairs.update((t, "clinc:" + intent) for split in clinc.values() for t, intent in split)
    return list(pairs.items())


def fill(data: Path, store: Path, records: int, distinct: int, settings: Settings) -> None:
    """Records, thumbs and cached embeddings; nothing is added when the store is full."""
    rng = random.Random(1)
    pairs = random.Random(2).sample(labelled_questions(data), distinct)
    intents = sorted({i for _, i in pairs})
    hot = set(rng.sample(intents, HOT))
    grown = set(rng.sample(sorted(set(intents) - hot), GROWN))
    texts = [t for t, _ in pairs]
    grown_texts = [t for t, i in pairs if i in grown]
    intent_of = dict(pairs)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with Session(engine) as session:
        have = session.scalar(select(func.count()).select_from(Record)) or 0
        for start in range(have, records, 50_000):
            rows, thumbs = [], []
            for i in range(start, min(records, start + 50_000)):
                age = timedelta(hours=rng.uniform(0.01, 8 * 24 - 0.01))
                current = age < timedelta(hours=24)
                text = rng.choice(grown_texts if current and rng.random() < 0.1 else texts)
                rows.append(
                    {
                        "id": f"tree-{i}",
                        "timestamp": NOW - age,
                        "prompt": text,
                        "response": "ok",
                        "latency_ms": rng.uniform(200, 2000),
                        "input_tokens": rng.randint(5, 50),
                        "output_tokens": rng.randint(5, 200),
                    }
                )
                if rng.random() < 0.4:
                    down = rng.random() < (0.35 if intent_of[text] in hot else 0.06)
                    thumbs.append(
                        {
                            "record_id": f"tree-{i}",
                            "created_at": NOW - age + timedelta(minutes=1),
                            "thumb": "down" if down else "up",
                            "source": "user",
                        }
                    )
            session.bulk_insert_mappings(Record, rows)  # type: ignore[arg-type]
            session.bulk_insert_mappings(Feedback, thumbs)  # type: ignore[arg-type]
            session.commit()
        fill_cache(session, texts, settings)
    engine.dispose()


def one_run(settings: Settings) -> tuple[float, dict[str, float], int]:
    """Wall seconds, the stage timings and the number of sub-clusters of one analysis run."""
    seconds, report, params = timed_run(settings)
    subclusters = sum(1 for c in report.clusters if c.parent is not None)
    return seconds, params["timings"], subclusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    default_store = Path(tempfile.gettempdir()) / "llmscope-tree-speed.db"
    parser.add_argument("--store", default=str(default_store))
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url = f"sqlite:///{args.store}"
    print(f"{args.records} records, {args.distinct} distinct questions, store {args.store}")
    fill(Path(args.data), Path(args.store), args.records, args.distinct, Settings(database_url=url))
    seconds, _, _ = one_run(Settings(database_url=url, tree_testing=False))
    print(f"   warm-up run (imports, numba compilation; not counted): {seconds:.1f}s ({load()})")
    walls: dict[bool, list[float]] = {False: [], True: []}
    after: dict[bool, list[float]] = {False: [], True: []}  # tests_s + store_s
    for round_ in range(1, args.rounds + 1):
        for tree in (False, True):  # off first: the baseline of the same round
            seconds, timings, subs = one_run(Settings(database_url=url, tree_testing=tree))
            walls[tree].append(seconds)
            after[tree].append(timings["tests_s"] + timings["store_s"])
            stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "embed_s")
            print(
                f"   round {round_} tree testing {'on ' if tree else 'off'}: {seconds:6.1f}s "
                f"({stages}), {subs} sub-clusters ({load()})"
            )
    off, on = mean(walls[False]), mean(walls[True])
    print(f"mean wall off {off:.1f}s, on {on:.1f}s: on/off = {on / off:.3f} ({load()})")
    # Tree testing only runs after the clustering (tests_s) and stores more (store_s); the
    # stages before it do the same work either way, so their spread is the machine's load.
    added = mean(after[True]) - mean(after[False])
    print(
        f"tests_s + store_s: off {mean(after[False]):.1f}s, on {mean(after[True]):.1f}s: "
        f"tree testing adds {added:.1f}s = {100 * added / off:.1f}% of the mean run without it"
    )


if __name__ == "__main__":
    main()
