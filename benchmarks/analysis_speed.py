"""Analysis speed: the embedding backends side by side, and a large run with cached embeddings.

1. **Backends** (``torch``, ``onnx``, ``onnx-int8``, ``onnx-int8-mixed``) as the product runs
   them, torch at its other batch sizes, and int8 / int8-mixed at batch 16, in one process.
   Throughput in texts/s on ``--embed-sample`` Banking77 texts (default 3 x 2,048), cut into
   slices of the embedding step's chunk (2,048 texts, what one ``encode`` call gets in a run),
   paired under the same load: every candidate embeds each slice in turn, the order rotated;
   the ONNX export of the first use is timed apart. Quality on ``--samples`` seeded samples of
   2,000 Banking77 texts (default 5): the default clustering's NMI/ARI against the intents
   (mean, and the mean paired difference to torch with its standard error: the chosen cut
   moves between samples, so one sample's difference is mostly the cut's noise), k-means at
   the true number of intents (the vectors without the cut), cosine agreement with torch's
   vectors (1st percentile, minimum), and the verdict against the bar for a default change
   (>= 2x torch's fastest batch size, mean NMI and ARI within 0.01).
2. **Large run**: ``run_analysis`` over ``--records`` records (Banking77 and CLINC150 questions,
   repeated as real traffic repeats; every ``--rated-every``-th record carries a thumb, down
   more often for a few hot questions) with every embedding cached, bounded by
   ``LLMSCOPE_ANALYSIS_MAX_RECORDS``: wall seconds, the run's ``params.timings``, the peak
   resident memory of the run's own process (``ru_maxrss``), how many records got a cluster
   and how many ratings the report counts against those stored. With ``--against REF`` the
   same run is made first by the code of git ref ``REF`` (e.g. ``main``: the before), then by
   this checkout (the after), each in a fresh process, under the same load.

The load average (``os.getloadavg()``) is printed beside every timing.

    python benchmarks/analysis_speed.py [--data ../shared/data] [--records 1000000]
        [--embed-sample 6144] [--samples 5] [--store /tmp/speed.db] [--distinct N] [--backend torch]
        [--skip-backends] [--skip-run] [--rated-every 5] [--against main]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import CHUNK, embed_texts
from llmscope.analysis.encoders import TorchEncoder, encoder_for
from llmscope.analysis.job import run_analysis
from llmscope.analysis.onnx_backend import OnnxEncoder
from llmscope.analysis.pipeline import cluster_embeddings
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import AnalysisRun, Feedback, Record
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


def banking77(data: Path, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    with open(data / "banking77" / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = random.Random(seed).sample(rows, n)
    intents = sorted({r["category"] for r in rows})
    return [r["text"] for r in rows], np.array([intents.index(r["category"]) for r in rows])


def candidates(workdir: Path) -> dict[str, Any]:
    """What is compared: torch as the product runs it first (the baseline), then torch at its
    other batch sizes (the bar is against torch's fastest setting), then the ONNX backends as
    the product runs them and at batch 16."""
    model, onnx_dir = "all-MiniLM-L6-v2", workdir / "onnx"
    # sentence-transformers itself, not the numpy MiniLM the torch backend runs by default
    default = Settings(data_dir=workdir, embedding_numpy=False)
    found: dict[str, Any] = {"torch": encoder_for(default)}
    for batch in (16, 32, 64):
        if batch != default.embed_batch_size:
            found[f"torch b{batch}"] = TorchEncoder(model, batch_size=batch, numpy=False)
    for backend in BACKENDS[1:]:
        found[backend] = encoder_for(Settings(embedding_backend=backend, data_dir=workdir))
    for precision in ("int8", "int8-mixed"):
        found[f"onnx-{precision} b16"] = OnnxEncoder(
            model, precision=precision, cache_dir=onnx_dir, batch_size=16
        )
    return found


def throughput(encoders: dict[str, Any], texts: list[str]) -> dict[str, float]:
    """Texts/s per candidate, paired under the same load: the texts are cut into slices of the
    embedding step's chunk (``embedding.CHUNK``: what one ``encode`` call gets in a run; smaller
    slices pad less per batch and flatter large batches' cost) and every candidate embeds each
    slice in turn, the order rotated from slice to slice, so the shared machine's load swings
    hit all of them alike."""
    names = list(encoders)
    seconds = dict.fromkeys(names, 0.0)
    for r, start in enumerate(range(0, len(texts), CHUNK)):
        chunk = texts[start : start + CHUNK]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            encoders[name].encode(chunk)
            seconds[name] += time.perf_counter() - started
        print(f"   slice {r + 1} ({len(chunk)} texts) done ({load()})", flush=True)
    return {name: len(texts) / seconds[name] for name in names}


def quality(encoders: dict[str, Any], data: Path, samples: int) -> dict[str, dict[str, Any]]:
    """Per candidate and seeded 2,000-text Banking77 sample: NMI and ARI of the default
    clustering (with the cut it chooses) and of k-means at the true number of intents (the
    vectors' own quality, without the cut's choice), and the cosine to torch's vectors."""
    settings = Settings()
    found: dict[str, dict[str, list[Any]]] = {
        name: {"default": [], "kmeans": [], "cosine": []} for name in encoders
    }
    for seed in range(samples):
        texts, truth = banking77(data, 2000, seed)
        reference: np.ndarray | None = None
        for name, encoder in encoders.items():
            vectors = encoder.encode(texts)
            reference = vectors if reference is None else reference
            _, clustering = cluster_embeddings(vectors, settings)
            kmeans = KMeans(len(set(truth)), n_init=4, random_state=seed).fit_predict(vectors)
            for kind, labels in (("default", clustering.labels), ("kmeans", kmeans)):
                found[name][kind].append(
                    (
                        normalized_mutual_info_score(truth, labels),
                        adjusted_rand_score(truth, labels),
                    )
                )
            found[name]["cosine"].append((vectors * reference).sum(axis=1))
        print(f"   quality sample {seed + 1}/{samples} done ({load()})", flush=True)
    return {
        name: {
            "default": np.array(parts["default"]),
            "kmeans": np.array(parts["kmeans"]),
            "cosine": np.concatenate(parts["cosine"]),
        }
        for name, parts in found.items()
    }


def compare_backends(data: Path, n: int, workdir: Path, samples: int) -> None:
    texts, _ = banking77(data, n)
    print(
        f"\n1. backends: throughput on {n} Banking77 texts in slices of {CHUNK}, quality on "
        f"{samples} samples of 2,000; {os.cpu_count()} cores ({load()})"
    )
    encoders = candidates(workdir)
    for name, encoder in encoders.items():
        started = time.perf_counter()
        encoder.encode(texts[:8])  # load (and, first time, export) the model
        print(f"   {name}: loaded/exported in {time.perf_counter() - started:.1f}s")
    rates = throughput(encoders, texts)
    scores = quality(encoders, data, samples)
    best_torch = max(rate for name, rate in rates.items() if name.startswith("torch"))
    base = scores["torch"]

    def paired(name: str, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean (NMI, ARI), mean paired difference to torch, and its standard error."""
        d = scores[name][kind] - base[kind]
        se = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(2)
        return scores[name][kind].mean(axis=0), d.mean(axis=0), se

    def delta(name: str, kind: str) -> str:
        mean, shift, se = paired(name, kind)
        return (
            f"NMI {mean[0]:.3f} ({shift[0]:+.3f} se {se[0]:.3f}) "
            f"ARI {mean[1]:.3f} ({shift[1]:+.3f} se {se[1]:.3f})"
        )

    for name, rate in rates.items():
        _, shift, se = paired(name, "default")
        if np.all(np.abs(shift) <= 0.01):
            clustering = "within 0.01"
        elif np.all(shift >= -2 * se):
            clustering = "outside 0.01 but within 2 se (the cut's noise)"
        else:
            clustering = "worse"
        kmeans = np.abs(paired(name, "kmeans")[1])
        verdict = (
            f"{'>=' if rate >= 2 * best_torch else '<'} 2x torch's best, default clustering "
            f"{clustering}, k-means {'within' if np.all(kmeans <= 0.01) else 'outside'} 0.01"
        )
        cosine = scores[name]["cosine"]
        print(
            f"   {name:20} {rate:4.0f} texts/s x{rate / rates['torch']:.2f} torch "
            f"x{rate / best_torch:.2f} best torch; cosine p1 {np.percentile(cosine, 1):.4f} "
            f"min {cosine.min():.4f}; default clustering {delta(name, 'default')}; "
            f"k-means {delta(name, 'kmeans')}: {verdict}"
        )
    print(
        f"   ({load()}; the bar: >= 2x torch's fastest batch size, mean NMI and ARI of the "
        "default clustering within 0.01 of torch's; se: standard error of the paired mean)"
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


# One run in a fresh process, with whichever llmscope is first on its path: JSON on stdout.
CHILD = """
import json, resource, sys, time
from datetime import datetime
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from llmscope.analysis.job import run_analysis
from llmscope.config import Settings
from llmscope.db import make_engine
from llmscope.db.models import AnalysisRun, RunAssignment
url, backend, now = sys.argv[1:4]
settings = Settings(database_url=url, embedding_backend=backend)
started = time.perf_counter()
report = run_analysis(settings, now=datetime.fromisoformat(now), progress=False)
seconds = time.perf_counter() - started
engine = make_engine(url)
with Session(engine) as session:
    params = session.get(AnalysisRun, report.run_id).params
    assigned = session.scalar(
        select(func.count()).select_from(RunAssignment)
        .where(RunAssignment.run_id == report.run_id)
    )
cut = [c for c in report.clusters if c.parent is None]
print(json.dumps({
    "seconds": seconds,
    "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    "records": report.baseline.records + report.current.records,
    "analysed": report.sample.analysed if report.sample else None,
    "max_records": settings.analysis_max_records,
    "assigned": assigned,
    "clusters": len(cut),
    "rated": sum(c.feedback.rated for c in cut),
    "down": sum(c.feedback.down for c in cut),
    "current_count": sum(c.current_count for c in cut),
    "timings": params["timings"],
}))
"""


def code_of(ref: str, workdir: Path) -> Path:
    """The tree of git ``ref`` of this checkout, exported under ``workdir``."""
    root = Path(__file__).resolve().parents[1]
    tree = workdir / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def child_run(code: Path, settings: Settings) -> dict[str, Any]:
    """One analysis run at ``NOW`` by the llmscope in ``code``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{code / 'sdk' / 'src'}"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, settings.database_url, settings.embedding_backend,
         NOW.isoformat()],
        env=env, check=True, capture_output=True, text=True, cwd=code,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def add_ratings(session: Session, records: int, every: int) -> tuple[int, int]:
    """Give every ``every``-th record a thumb once (down for 30% of a few hot questions' calls,
    6% of the others); returns the current window's stored (rated, down)."""
    if every and not session.scalar(select(func.count()).select_from(Feedback)):
        rng = random.Random(3)
        for start in range(0, records, 10_000 * every):
            ids = [f"speed-{i}" for i in range(start, min(records, start + 10_000 * every), every)]
            prompts = {
                rid: str(prompt)
                for rid, prompt in session.execute(
                    select(Record.id, Record.prompt).where(Record.id.in_(ids))
                )
            }
            rows = [
                {
                    "record_id": rid,
                    "created_at": NOW,
                    "thumb": "down"
                    if rng.random() < (0.3 if zlib.crc32(prompts[rid].encode()) % 20 == 0 else 0.06)
                    else "up",
                    "source": "user",
                }
                for rid in ids
                if rid in prompts
            ]
            session.bulk_insert_mappings(Feedback, rows)
            session.commit()
    current = Record.timestamp >= NOW - timedelta(days=1)
    rated = select(Feedback.thumb).join(Record, Record.id == Feedback.record_id).where(current)
    thumbs = session.scalars(rated).all()
    return len(thumbs), sum(t == "down" for t in thumbs)


def large_run(
    data: Path, records: int, store: Path, distinct: int, backend: str, every: int, against: str
) -> None:
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
        rated, down = add_ratings(session, records, every)
        fill_cache(session, texts, settings)
    engine.dispose()
    print(f"   stored: {rated} ratings in the current window, {down} thumbs-down")
    runs: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as workdir:
        if against:
            runs.append((f"before ({against})", code_of(against, Path(workdir))))
        runs.append(("after (this checkout)", Path(__file__).resolve().parents[1]))
        for name, code in runs:
            print(f"   {name}: running ({load()})", flush=True)
            got = child_run(code, settings)
            analysed = got["analysed"] if got["analysed"] is not None else got["records"]
            print(
                f"   {name}: {got['records']} records, clustered {analysed} (max "
                f"{got['max_records']}), {got['assigned']} with a cluster; {got['seconds']:.1f}s, "
                f"peak RSS {got['peak_gib']:.2f} GiB, {got['clusters']} clusters; current "
                f"window counted {got['current_count']}, ratings counted {got['rated']} of "
                f"{rated} ({got['down']} of {down} down) ({load()})"
            )
            print(f"   timings: {got['timings']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "llmscope-speed.db"))
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--embed-sample", type=int, default=3 * CHUNK, help="backends: speed")
    parser.add_argument("--samples", type=int, default=5, help="backends: quality samples")
    parser.add_argument("--distinct", type=int, default=0, help="run: only N distinct texts")
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help="run: the backend")
    parser.add_argument("--skip-backends", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--rated-every", type=int, default=5, help="run: a thumb every N")
    parser.add_argument("--against", default="", help="run: also run git ref REF's code first")
    args = parser.parse_args()
    data = Path(args.data)
    if not args.skip_backends:
        with tempfile.TemporaryDirectory() as workdir:
            compare_backends(data, args.embed_sample, Path(workdir), args.samples)
    if not args.skip_run:
        large_run(
            data,
            args.records,
            Path(args.store),
            args.distinct,
            args.backend,
            args.rated_every,
            args.against,
        )


if __name__ == "__main__":
    main()
