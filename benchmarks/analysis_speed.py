"""Analysis speed: embedding throughput against raw ``encode``, and a 100k-record run.

1. The embedding step (``embed_texts``: hashing, cache lookups and writes included) against
   ``SentenceTransformer.encode`` on the same texts, side by side, into a fresh store.
2. ``run_analysis`` over 100,000 records (Banking77 and CLINC150 questions, repeated as real
   traffic repeats) with every embedding already cached: the seconds of the whole run.

    python benchmarks/analysis_speed.py [--data ../shared/data] [--store /tmp/speed.db]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from llmscope.analysis.embedding import embed_texts, load_model
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.job import run_analysis
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Record

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def questions(data: Path) -> list[str]:
    texts = []
    for split in ("train", "test"):
        with open(data / "banking77" / f"{split}.csv", newline="") as f:
            texts += [r["text"] for r in csv.DictReader(f)]
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    texts += [t for split in clinc.values() for t, _ in split]
    return list(dict.fromkeys(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "llmscope-speed.db"))
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--embed-sample", type=int, default=4000)
    parser.add_argument("--distinct", type=int, default=0, help="use only N distinct texts")
    args = parser.parse_args()
    texts = questions(Path(args.data))
    if args.distinct:
        texts = random.Random(2).sample(texts, args.distinct)
    print(f"{len(texts)} distinct questions; cores: {os.cpu_count()}")
    settings = Settings(database_url=f"sqlite:///{args.store}")
    model = load_model(settings.embedding_model)

    # 1. throughput, side by side on the same texts (a fresh store, so nothing is cached)
    sample = random.Random(0).sample(texts, args.embed_sample)
    model.encode(sample[:256], batch_size=64)  # warm-up
    started = time.perf_counter()
    model.encode(sample, batch_size=64, normalize_embeddings=True)
    raw = len(sample) / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/throughput.db")
        upgrade(engine)
        with Session(engine) as session:
            started = time.perf_counter()
            embed_texts(session, sample, encoder=encoder_for(settings), progress=False)
            ours = len(sample) / (time.perf_counter() - started)
        engine.dispose()
    print(
        f"embedding: raw encode {raw:.0f} texts/s, llmscope embed step {ours:.0f} texts/s "
        f"({ours / raw:.0%} of raw)"
    )

    # 2. a 100k-record run with the embeddings cached
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with Session(engine) as session:
        have = session.query(Record).count()
        if have < args.records:
            rng = random.Random(1)
            rows = [
                {
                    "id": f"speed-{i}",
                    "timestamp": NOW - timedelta(hours=rng.uniform(0.01, 8 * 24 - 0.01)),
                    "prompt": rng.choice(texts),
                    "response": "ok",
                    "latency_ms": rng.uniform(200, 2000),
                    "input_tokens": rng.randint(5, 50),
                    "output_tokens": rng.randint(5, 200),
                }
                for i in range(have, args.records)
            ]
            session.bulk_insert_mappings(Record, rows)  # type: ignore[arg-type]
            session.commit()
        started = time.perf_counter()
        embed_texts(session, texts, encoder=encoder_for(settings), progress=True)
        print(f"cache filled in {time.perf_counter() - started:.0f}s (0 when already cached)")
    engine.dispose()
    started = time.perf_counter()
    report = run_analysis(settings, now=NOW, progress=False)
    seconds = time.perf_counter() - started
    records = report.baseline.records + report.current.records
    print(
        f"run over {records} records (embeddings cached): {seconds:.1f}s, "
        f"{len(report.clusters)} clusters"
    )


if __name__ == "__main__":
    main()
