"""Analysis speed: the embedding backends side by side, and a large run with cached embeddings.

1. **Backends** (``torch``, ``onnx``, ``onnx-int8``) on the same Banking77 texts (a seeded
   sample of ``--embed-sample``, default 2,000), in one process, one after the other: throughput
   in texts/s (the ONNX export of the first use is timed apart), cosine agreement with torch's
   vectors (1st percentile, minimum, mean), and the default clustering pipeline's NMI/ARI against
   the Banking77 intents on each backend's vectors. torch is the named baseline; it is measured
   first and again last, so load drift on the shared machine shows.
2. **Large run**: ``run_analysis`` over ``--records`` records (Banking77 and CLINC150 questions,
   repeated as real traffic repeats) with every embedding cached, bounded by
   ``LLMSCOPE_ANALYSIS_MAX_RECORDS``: wall seconds, the run's ``params.timings`` and the peak
   resident memory of the process (``ru_maxrss``).

The load average (``os.getloadavg()``) is printed beside every timing.

    python benchmarks/analysis_speed.py [--data ../shared/data] [--records 1000000]
        [--embed-sample 2000] [--store /tmp/speed.db] [--distinct N] [--backend torch]
        [--skip-backends] [--skip-run]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import embed_texts
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.job import run_analysis
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import AnalysisRun, Record
from llmscope.report import RunReport

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
BACKENDS = ("torch", "onnx", "onnx-int8")


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def questions(data: Path) -> list[str]:
    texts = []
    for split in ("train", "test"):
        with open(data / "banking77" / f"{split}.csv", newline="") as f:
            texts += [r["text"] for r in csv.DictReader(f)]
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    texts += [t for split in clinc.values() for t, _ in split]
    return list(dict.fromkeys(texts))


def banking77(data: Path, n: int) -> tuple[list[str], np.ndarray]:
    with open(data / "banking77" / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = random.Random(0).sample(rows, n)
    intents = sorted({r["category"] for r in rows})
    return [r["text"] for r in rows], np.array([intents.index(r["category"]) for r in rows])


def compare_backends(data: Path, n: int, workdir: Path) -> None:
    texts, truth = banking77(data, n)
    intents = len(set(truth))
    print(f"\n1. backends on {n} Banking77 texts ({intents} intents), {os.cpu_count()} cores")
    reference: np.ndarray | None = None
    rates: dict[str, float] = {}
    for backend in (*BACKENDS, "torch"):
        settings = Settings(embedding_backend=backend, data_dir=workdir)
        encoder = encoder_for(settings)
        started = time.perf_counter()
        encoder.encode(texts[:8])  # load (and, first time, export) the model
        prepared = time.perf_counter() - started
        started = time.perf_counter()
        vectors = encoder.encode(texts)
        seconds = time.perf_counter() - started
        rate = n / seconds
        if backend in rates:  # torch again, last
            print(f"   torch again: {rate:.0f} texts/s ({load()})")
            rates["torch"] = (rates["torch"] + rate) / 2
            continue
        rates[backend] = rate
        if reference is None:
            reference = vectors
        cosine = (vectors * reference).sum(axis=1)
        _, clustering = cluster_embeddings(vectors, settings)
        nmi = normalized_mutual_info_score(truth, clustering.labels)
        ari = adjusted_rand_score(truth, clustering.labels)
        print(
            f"   {backend:9} {rate:6.0f} texts/s (x{rate / rates['torch']:.2f} torch), "
            f"load/export {prepared:5.1f}s, cosine to torch p1 {np.percentile(cosine, 1):.4f} "
            f"min {cosine.min():.4f} mean {cosine.mean():.4f}, NMI {nmi:.3f} ARI {ari:.3f} "
            f"({clustering.n_clusters} clusters) ({load()})"
        )
    print(
        "   speed-up against the mean of both torch passes: "
        + ", ".join(f"{b} x{rates[b] / rates['torch']:.2f}" for b in BACKENDS[1:])
    )


def fill_cache(session: Session, texts: list[str], settings: Settings) -> None:
    """Embed the texts the cache lacks, printing how long it took."""
    started = time.perf_counter()
    embed_texts(session, texts, encoder=encoder_for(settings), progress=True)
    print(f"   cache filled in {time.perf_counter() - started:.0f}s (0 when already cached)")


def timed_run(settings: Settings) -> tuple[float, RunReport, dict[str, Any]]:
    """Wall seconds, report and stored ``params`` of one analysis run at ``NOW``."""
    started = time.perf_counter()
    report = run_analysis(settings, now=NOW, progress=False)
    seconds = time.perf_counter() - started
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        params = session.get(AnalysisRun, report.run_id).params  # type: ignore[union-attr]
    engine.dispose()
    return seconds, report, params


def large_run(data: Path, records: int, store: Path, distinct: int, backend: str) -> None:
    texts = questions(data)
    if distinct:
        texts = random.Random(2).sample(texts, distinct)
    settings = Settings(database_url=f"sqlite:///{store}", embedding_backend=backend)
    print(f"\n2. a run over {records} records ({len(texts)} distinct questions), cached embeddings")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with Session(engine) as session:
        have = session.scalar(select(func.count()).select_from(Record)) or 0
        rng = random.Random(1)
        for start in range(have, records, 50_000):
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
                for i in range(start, min(records, start + 50_000))
            ]
            session.bulk_insert_mappings(Record, rows)  # type: ignore[arg-type]
            session.commit()
        fill_cache(session, texts, settings)
    engine.dispose()
    seconds, report, params = timed_run(settings)
    total = report.baseline.records + report.current.records
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    analysed = report.sample.analysed if report.sample else total
    print(
        f"   run over {total} records (analysed {analysed}"
        f", max {settings.analysis_max_records}): {seconds:.1f}s, {len(report.clusters)} clusters, "
        f"peak RSS {peak:.2f} GiB ({load()})"
    )
    print(f"   timings: {params['timings']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "llmscope-speed.db"))
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--embed-sample", type=int, default=2000)
    parser.add_argument("--distinct", type=int, default=0, help="run: only N distinct texts")
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help="run: the backend")
    parser.add_argument("--skip-backends", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    if not args.skip_backends:
        with tempfile.TemporaryDirectory() as workdir:
            compare_backends(data, args.embed_sample, Path(workdir))
    if not args.skip_run:
        large_run(data, args.records, Path(args.store), args.distinct, args.backend)


if __name__ == "__main__":
    main()
