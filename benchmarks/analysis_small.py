"""Small runs, cold: ``llmscope analyze`` in a fresh process over an empty store, 40 records and
500 records, the code of a git ref (the before) against this checkout (the after), in one run.

Each measurement is one ``python -m llmscope analyze --json`` process on a new SQLite store
(nothing cached: the process imports, loads the model, embeds every text, reduces, clusters,
tests, stores): its wall seconds, its CPU seconds (user + system, from ``getrusage``), its exit
status, and the run's own ``params.timings`` when it printed a report. The records are
Banking77 questions (``--data``; without the data set, the hand-written support questions of
the tests), half in the baseline week and half in the current day. Before and after alternate
within each repeat, so both see the same load; the 1-minute load average is printed with
every figure.

Targets (issue "fast small runs", 2 cores): the empty store answers in <= 3 s, a run over
<= 500 records in <= 10 s.

With ``--encoders 500,5000``: the embedding step alone, in a fresh process per measurement, on
that many Banking77 questions (longest first in the embedding step's chunks): the numpy MiniLM
of this checkout and of the git ref against sentence-transformers (torch, batches of 64, its
own two intra-op threads); encode wall and CPU seconds (model loaded), and the whole process's.

With ``--quality K``: what PCA costs against UMAP at the small-run size, on K seeded samples
of 500 Banking77 questions (drawn from one embedded pool of 2,000): the default clustering's
NMI and ARI against the intents, reduced by PCA (``LLMSCOPE_REDUCE_SMALL_MAX=500``) and by UMAP
(``=0``), and their mean paired difference.

    python benchmarks/analysis_small.py [--against main] [--repeat 3] [--sizes 0,40,500]
        [--data ../shared/data] [--quality 5] [--encoders 500,5000]
        [--out benchmarks/results/analysis_small.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_speed import code_of  # noqa: E402

from llmscope.db import make_engine  # noqa: E402

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
BASELINE = f"{(NOW - timedelta(days=8)).isoformat()}/{(NOW - timedelta(days=1)).isoformat()}"
CURRENT = f"{(NOW - timedelta(days=1)).isoformat()}/{NOW.isoformat()}"
ROOT = Path(__file__).resolve().parents[1]


def questions(data: Path) -> list[str]:
    """Banking77's questions (train split), or the tests' hand-written ones without the data."""
    path = data / "banking77" / "train.csv"
    if path.is_file():
        with open(path, newline="") as f:
            return list(dict.fromkeys(r["text"] for r in csv.DictReader(f)))
    sys.path.insert(0, str(ROOT))
    from tests.analysis.traffic import OPENINGS, TOPICS

    return [o + q for qs in TOPICS.values() for q in qs for o in OPENINGS]


STORE = """
import json, sys
from datetime import datetime, timedelta
from sqlalchemy.orm import Session
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Record
url, now, rows = sys.argv[1], datetime.fromisoformat(sys.argv[2]), json.load(open(sys.argv[3]))
engine = make_engine(url)
upgrade(engine)
with Session(engine) as session:
    for i, (prompt, hours, latency) in enumerate(rows):
        session.add(Record(id=f"r{i}", timestamp=now - timedelta(hours=hours), endpoint="support",
                           model="m", prompt=prompt, response="ok", latency_ms=latency))
    session.commit()
engine.dispose()
"""


def make_store(code: Path, path: Path, n: int, texts: list[str]) -> str:
    """A SQLite store with ``n`` records, half per window, seeded: migrated and filled by the
    llmscope in ``code`` (each version reads only the schema it knows)."""
    rng = random.Random(n)
    chosen = rng.sample(texts, min(n, len(texts)))
    rows = []
    for i in range(n):
        hours = rng.uniform(0.1, 23.5) if i % 2 == 1 else rng.uniform(25, 190)
        rows.append((chosen[i % len(chosen)], hours, 200.0 + rng.uniform(0, 100)))
    listed = path.with_suffix(".json")
    listed.write_text(json.dumps(rows))
    url = f"sqlite:///{path}"
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{code / 'sdk' / 'src'}"}
    subprocess.run(
        [sys.executable, "-c", STORE, url, NOW.isoformat(), str(listed)],
        env=env, check=True, cwd=code,
    )  # fmt: skip
    return url


def one_run(code: Path, url: str) -> dict[str, Any]:
    """``llmscope analyze --json`` by the code in ``code``, in a fresh process: the figures."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{code}{os.pathsep}{code / 'sdk' / 'src'}",
        "HF_HUB_OFFLINE": "1",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "llmscope", "analyze", "--json", "--database-url", url,
         "--baseline", BASELINE, "--current", CURRENT],
        env=env, capture_output=True, text=True, cwd=code,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timings: dict[str, float] = {}
    if done.returncode == 0:
        report = json.loads(done.stdout)
        timings = report.get("params", {}).get("timings", {})
        if not timings:  # the old code kept its params beside the report, not in it
            engine = make_engine(url)
            with engine.connect() as conn:
                params = conn.exec_driver_sql("SELECT params FROM analysis_runs").scalar()
            engine.dispose()
            timings = (json.loads(params) if isinstance(params, str) else params)["timings"]
    return {"wall": wall, "cpu": cpu, "exit": done.returncode, "load": load, "timings": timings}


ENCODE = """
import json, resource, sys, time
from llmscope.analysis.embedding import CHUNK, load_model, model_location
texts = sorted(json.load(open(sys.argv[2])), key=len, reverse=True)
if sys.argv[1] == "numpy":
    from llmscope.analysis.minilm import load_minilm
    model = load_minilm(model_location("all-MiniLM-L6-v2"))
    encode = model.encode
else:
    model = load_model("all-MiniLM-L6-v2")
    def encode(chunk):
        return model.encode(chunk, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
encode(texts[:8])  # lazy set-up (threads, first BLAS call) is not the encoding
usage = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
for start in range(0, len(texts), CHUNK):
    encode(texts[start : start + CHUNK])
wall = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def encoders(texts: list[str], sizes: list[int], against: str, repeat: int) -> list[str]:
    """Encoding alone, numpy (this checkout, ``against``) and torch: Markdown lines."""
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as workdir:
        runners = [("numpy (this checkout)", ROOT, "numpy"), ("torch", ROOT, "torch")]
        if against:
            before = code_of(against, Path(workdir))
            runners.insert(0, (f"numpy ({against})", before, "numpy"))
        for _ in range(repeat):
            for n in sizes:
                chosen = random.Random(n).sample(texts, min(n, len(texts)))
                path = Path(workdir) / f"texts-{n}.json"
                path.write_text(json.dumps(chosen))
                for name, code, how in runners:
                    env = {
                        **os.environ,
                        "PYTHONPATH": f"{code}{os.pathsep}{code / 'sdk' / 'src'}",
                        "HF_HUB_OFFLINE": "1",
                    }
                    before_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                    load = os.getloadavg()[0]
                    started = time.perf_counter()
                    out = subprocess.run(
                        [sys.executable, "-c", ENCODE, how, str(path)],
                        env=env, capture_output=True, text=True, check=True, cwd=code,
                    ).stdout  # fmt: skip
                    total = time.perf_counter() - started
                    after_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                    figures = dict(json.loads(out.strip().splitlines()[-1]))
                    figures["process_wall"] = total
                    figures["process_cpu"] = (after_usage.ru_utime - before_usage.ru_utime) + (
                        after_usage.ru_stime - before_usage.ru_stime
                    )
                    figures["load"] = load
                    rows.append((name, n, figures))
                    print(f"{name:>24} texts={n:<5} " + " ".join(
                        f"{k}={v:.1f}" for k, v in figures.items()), flush=True)  # fmt: skip
    out_lines = [
        "",
        "## Encoding alone",
        "",
        "| encoder | texts | encode wall s | encode CPU s | texts/s (wall) | process wall s | "
        "process CPU s | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r[0] for r in rows):
        for n in sizes:
            got = [f for r, m, f in rows if r == name and m == n]

            def med(key: str, got: list[dict[str, float]] = got) -> float:
                return statistics.median(f[key] for f in got)

            out_lines.append(
                f"| {name} | {n} | {med('wall'):.2f} | {med('cpu'):.2f} | "
                f"{n / med('wall'):.0f} | {med('process_wall'):.1f} | {med('process_cpu'):.1f} | "
                f"{_each(got, 'load')} |"
            )
    return out_lines


def quality(data: Path, samples: int) -> list[str]:
    """PCA against UMAP on seeded 500-question Banking77 samples: Markdown lines."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from llmscope.analysis.embedding import model_location
    from llmscope.analysis.minilm import load_minilm
    from llmscope.analysis.pipeline import cluster_embeddings
    from llmscope.config import Settings

    with open(data / "banking77" / "train.csv", newline="") as f:
        rows = list({r["text"]: r["category"] for r in csv.DictReader(f)}.items())
    rng = random.Random(0)
    pool = rng.sample(rows, 2000)
    vectors = load_minilm(model_location("all-MiniLM-L6-v2")).encode([t for t, _ in pool])
    out = ["", "| sample | NMI PCA | NMI UMAP | ARI PCA | ARI UMAP | clusters PCA / UMAP |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    diffs: list[tuple[float, float]] = []
    for seed in range(samples):
        chosen = np.array(sorted(random.Random(seed).sample(range(len(pool)), 500)))
        truth = [pool[i][1] for i in chosen]
        figures = []
        for small_max in (500, 0):
            settings = Settings(reduce_small_max=small_max)
            _, clustering = cluster_embeddings(vectors[chosen], settings)
            figures.append(
                (
                    normalized_mutual_info_score(truth, clustering.labels),
                    adjusted_rand_score(truth, clustering.labels),
                    clustering.n_clusters,
                )
            )
        (nmi_p, ari_p, k_p), (nmi_u, ari_u, k_u) = figures
        diffs.append((nmi_p - nmi_u, ari_p - ari_u))
        out.append(
            f"| {seed} | {nmi_p:.3f} | {nmi_u:.3f} | {ari_p:.3f} | {ari_u:.3f} | {k_p} / {k_u} |"
        )
        print(out[-1], f"load {os.getloadavg()[0]:.1f}", flush=True)
    nmi = [d[0] for d in diffs]
    ari = [d[1] for d in diffs]
    out.append(
        f"\nMean paired difference PCA - UMAP: NMI {statistics.mean(nmi):+.3f} "
        f"(sd {statistics.stdev(nmi) if len(nmi) > 1 else 0:.3f}), ARI {statistics.mean(ari):+.3f} "
        f"(sd {statistics.stdev(ari) if len(ari) > 1 else 0:.3f}); load {os.getloadavg()[0]:.1f}"
    )
    return out


def _each(figures: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{f[key]:.1f}" for f in figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="main", help="git ref of the before ('' to skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="0,40,500")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, help="also write the figures (Markdown) here")
    parser.add_argument("--quality", type=int, default=0, help="PCA against UMAP on K samples")
    parser.add_argument("--encoders", default="", help="encoding alone at these sizes")
    args = parser.parse_args()
    if args.encoders:
        sizes = [int(s) for s in args.encoders.split(",")]
        table = "\n".join(encoders(questions(args.data), sizes, args.against, args.repeat))
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
        return
    if args.quality:
        table = "\n".join(quality(args.data, args.quality))
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    texts = questions(args.data)
    rows: list[tuple[str, int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as workdir:
        trees = [("after", ROOT)]
        if args.against:
            trees.insert(0, (f"before ({args.against})", code_of(args.against, Path(workdir))))
        for repeat in range(args.repeat):
            for n in sizes:
                for name, code in trees:
                    store = Path(workdir) / f"{name[:6]}-{n}-{repeat}.db"
                    figures = one_run(code, make_store(code, store, n, texts))
                    rows.append((name, n, figures))
                    print(
                        f"{name:>16} records={n:<4} wall={figures['wall']:5.1f}s "
                        f"cpu={figures['cpu']:5.1f}s exit={figures['exit']} "
                        f"load {figures['load']:.1f} {figures['timings']}",
                        flush=True,
                    )
    lines = [
        "| code | records | wall s (median) | wall s (each) | CPU s (median) | exit | "
        "load avg (each) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r[0] for r in rows):
        for n in sizes:
            got = [f for r, m, f in rows if r == name and m == n]
            lines.append(
                f"| {name} | {n} | {statistics.median(f['wall'] for f in got):.1f} | "
                f"{_each(got, 'wall')} | "
                f"{statistics.median(f['cpu'] for f in got):.1f} | "
                f"{', '.join(sorted({str(f['exit']) for f in got}))} | "
                f"{_each(got, 'load')} |"
            )
    stages = [
        "",
        "Stages of the after's runs (median seconds, the run's own `params.timings`):",
        "",
    ]
    for n in sizes:
        got = [f["timings"] for r, m, f in rows if r == "after" and m == n and f["timings"]]
        if got:
            keys = list(got[0])
            stages.append(
                f"- {n} records: "
                + ", ".join(f"{k} {statistics.median(t[k] for t in got):.2f}" for k in keys)
            )
    table = "\n".join(lines + stages)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
