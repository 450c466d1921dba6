"""Analysis speed: the embedding backends side by side, and a large run with cached embeddings.

1. **Backends** (``torch``, ``onnx``, ``onnx-int8``, ``onnx-int8-mixed``) and the candidates
   measured for them (torch with 1 and all-cores threads, onnx with explicit onnxruntime threads
   and sequential execution, batch 32 for torch, onnx and int8-mixed, int8 on the feed-forward
   MatMuls only) on the same Banking77 texts (a seeded sample of ``--embed-sample``, default
   2,000), in one process:
   throughput in texts/s, paired under the same load (``--rounds`` slices of the texts, each
   embedded by every candidate in turn, the order rotated; the ONNX export of the first use is
   timed apart), cosine agreement with torch's vectors (1st percentile, minimum), the default
   clustering pipeline's NMI/ARI against the Banking77 intents on each one's vectors, and the
   verdict against the bar for a default change (>= 2x torch, NMI and ARI within 0.01).
2. **Large run**: ``run_analysis`` over ``--records`` records (Banking77 and CLINC150 questions,
   repeated as real traffic repeats) with every embedding cached, bounded by
   ``LLMSCOPE_ANALYSIS_MAX_RECORDS``: wall seconds, the run's ``params.timings`` and the peak
   resident memory of the process (``ru_maxrss``).

The load average (``os.getloadavg()``) is printed beside every timing.

    python benchmarks/analysis_speed.py [--data ../shared/data] [--records 1000000]
        [--embed-sample 2000] [--rounds 8] [--store /tmp/speed.db] [--distinct N] [--backend torch]
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
from llmscope.analysis.encoders import TorchEncoder, encoder_for
from llmscope.analysis.job import run_analysis
from llmscope.analysis.onnx_backend import OnnxEncoder
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import AnalysisRun, Record
from llmscope.report import RunReport

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-int8-mixed")


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


class TorchThreads:
    """sentence-transformers with ``torch.set_num_threads(n)`` for its calls (restored after)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.inner = TorchEncoder("all-MiniLM-L6-v2")

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self.inner.encode(texts)
        finally:
            torch.set_num_threads(before)


def candidates(workdir: Path) -> dict[str, Any]:
    """What is compared, torch (as the product runs it) first: the baseline."""
    cores = os.cpu_count() or 1
    model, onnx_dir = "all-MiniLM-L6-v2", workdir / "onnx"
    found: dict[str, Any] = {
        "torch": encoder_for(Settings(data_dir=workdir)),
        "torch 1 thread": TorchThreads(1),
        f"torch {cores} threads": TorchThreads(cores),
    }
    for backend in BACKENDS[1:]:
        found[backend] = encoder_for(Settings(embedding_backend=backend, data_dir=workdir))
    found[f"onnx {cores} threads seq"] = OnnxEncoder(model, cache_dir=onnx_dir, threads=cores)
    found["onnx b32"] = OnnxEncoder(model, cache_dir=onnx_dir, batch_size=32)
    found["onnx-int8-mixed b32"] = OnnxEncoder(
        model, precision="int8-mixed", cache_dir=onnx_dir, batch_size=32
    )
    found["torch b32"] = TorchEncoder(model, batch_size=32)
    found["onnx-int8-ffn"] = OnnxEncoder(model, precision="int8-ffn", cache_dir=onnx_dir)
    return found


def compare_backends(data: Path, n: int, workdir: Path, rounds: int) -> None:
    """Throughput paired under the same load: the texts are cut into ``rounds`` slices and
    every candidate embeds each slice in turn, the order rotated from slice to slice, so load
    swings on the shared machine hit all of them alike."""
    texts, truth = banking77(data, n)
    print(
        f"\n1. backends on {n} Banking77 texts ({len(set(truth))} intents), {os.cpu_count()} "
        f"cores, {rounds} rounds ({load()})"
    )
    encoders = candidates(workdir)
    names = list(encoders)
    for name in names:
        started = time.perf_counter()
        encoders[name].encode(texts[:8])  # load (and, first time, export) the model
        print(f"   {name}: loaded/exported in {time.perf_counter() - started:.1f}s")
    seconds = dict.fromkeys(names, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    slices = np.array_split(np.arange(n), rounds)
    for r, rows in enumerate(slices):
        chunk = [texts[i] for i in rows]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            parts[name].append(encoders[name].encode(chunk))
            seconds[name] += time.perf_counter() - started
        print(f"   round {r + 1}/{rounds} done ({load()})", flush=True)
    settings = Settings()
    rates = {name: n / seconds[name] for name in names}
    best_torch = max(rate for name, rate in rates.items() if name.startswith("torch"))
    reference = np.concatenate(parts["torch"])
    baseline: tuple[float, float] | None = None
    for name in names:
        vectors = np.concatenate(parts[name])
        cosine = (vectors * reference).sum(axis=1)
        _, clustering = cluster_embeddings(vectors, settings)
        nmi = normalized_mutual_info_score(truth, clustering.labels)
        ari = adjusted_rand_score(truth, clustering.labels)
        baseline = baseline or (nmi, ari)
        d_nmi, d_ari = nmi - baseline[0], ari - baseline[1]
        fast = rates[name] >= 2 * rates["torch"]
        if max(abs(d_nmi), abs(d_ari)) <= 0.01:
            verdict = "meets the bar" if fast else "quality ok, < 2x"
        elif min(d_nmi, d_ari) >= -0.01:
            verdict = "better than torch by > 0.01" + ("" if fast else ", < 2x")
        else:
            verdict = "quality fails"
        print(
            f"   {name:20} {rates[name]:4.0f} texts/s x{rates[name] / rates['torch']:.2f} "
            f"(x{rates[name] / best_torch:.2f} best torch), cosine p1 "
            f"{np.percentile(cosine, 1):.4f} min {cosine.min():.4f}, NMI {nmi:.3f} ({d_nmi:+.3f}) "
            f"ARI {ari:.3f} ({d_ari:+.3f}), {clustering.n_clusters} clusters: {verdict}"
        )
    print(f"   ({load()}; the bar: >= 2x torch, NMI and ARI within 0.01 of torch's)")


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
    parser.add_argument("--rounds", type=int, default=8, help="backends: slices, alternated")
    parser.add_argument("--distinct", type=int, default=0, help="run: only N distinct texts")
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help="run: the backend")
    parser.add_argument("--skip-backends", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    if not args.skip_backends:
        with tempfile.TemporaryDirectory() as workdir:
            compare_backends(data, args.embed_sample, Path(workdir), args.rounds)
    if not args.skip_run:
        large_run(data, args.records, Path(args.store), args.distinct, args.backend)


if __name__ == "__main__":
    main()
