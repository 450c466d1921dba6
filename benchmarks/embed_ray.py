"""``llmscope embed --ray`` against one process: the same texts, the same store, side by side.

Stores ``--texts`` distinct Banking77/CLINC150 questions (seeded sample) as records in fresh
SQLite stores, then fills the embedding cache of one with ``embed_new_records`` in this process
(torch, all cores: the baseline), and of another with ``embed_with_ray`` on a local Ray instance
of ``--workers`` CPUs and as many actors; then one process again with torch on one thread (as
each actor runs), to tell Ray's share of a gain from the threads'; the baseline is measured
again last, so load drift on the shared machine shows. Printed per pass: wall seconds and
texts/s with the load average (``os.getloadavg()``) beside them; for Ray, the instance's start
apart from the embedding (which includes starting the actors and loading the model in each);
last, the largest difference between the local and the Ray store's vectors.

    python benchmarks/embed_ray.py [--data ../shared/data] [--texts 4000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from analysis_speed import NOW, load, questions
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis import ray_embed
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.incremental import EmbedProgress, embed_new_records
from llmscope.config import Settings
from llmscope.db import make_engine, upgrade
from llmscope.db.models import Embedding, Record


def fresh_store(path: Path, texts: list[str]) -> Settings:
    settings = Settings(database_url=f"sqlite:///{path}", data_dir=path.parent)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with Session(engine) as session:
        session.add_all(
            Record(id=f"r{i:06d}", timestamp=NOW - timedelta(hours=1), prompt=t)
            for i, t in enumerate(texts)
        )
        session.commit()
    engine.dispose()
    return settings


def timed(name: str, settings: Settings, fill: Callable[[Session], EmbedProgress]) -> float:
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        started = time.perf_counter()
        done = fill(session)
        seconds = time.perf_counter() - started
    engine.dispose()
    rate = done.embedded / seconds
    print(f"  {name:<34} {done.embedded:>6} texts {seconds:7.1f} s {rate:7.0f} texts/s  {load()}")
    return rate


def vectors(settings: Settings) -> dict[str, np.ndarray]:
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = session.execute(select(Embedding.text_hash, Embedding.vector)).all()
    engine.dispose()
    return {h: np.frombuffer(v, dtype="<f4") for h, v in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs and actors")
    args = parser.parse_args()
    texts = random.Random(0).sample(questions(Path(args.data)), args.texts)
    since = NOW - timedelta(days=1)
    print(f"{args.texts} distinct texts, {os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory() as workdir:
        stores = [fresh_store(Path(workdir) / f"{name}.db", texts) for name in "abcd"]
        encoder = encoder_for(stores[0])
        encoder.encode(["warm-up"])  # the model's load is not the baseline's cost
        first = timed(
            "one process (torch)",
            stores[0],
            lambda s: embed_new_records(s, stores[0], since=since, encoder=encoder),
        )
        started = time.perf_counter()
        ray_embed.connect(f"local:{args.workers}")
        print(f"  Ray instance start: {time.perf_counter() - started:.1f} s  {load()}")
        try:
            on_ray = timed(
                f"Ray Data, {args.workers} actors (incl. start)",
                stores[1],
                lambda s: ray_embed.embed_with_ray(
                    s, stores[1], encoder, since=since, actors=args.workers
                ),
            )
        finally:
            ray_embed.disconnect()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what each actor runs with: is the gain Ray's, or one thread's?
        timed(
            "one process, 1 torch thread",
            stores[3],
            lambda s: embed_new_records(s, stores[3], since=since, encoder=encoder),
        )
        torch.set_num_threads(threads)
        last = timed(
            "one process again",
            stores[2],
            lambda s: embed_new_records(s, stores[2], since=since, encoder=encoder),
        )
        local, remote = vectors(stores[0]), vectors(stores[1])
        gap = max(float(np.abs(local[h] - remote[h]).max()) for h in local)
    baseline = (first + last) / 2
    print(f"Ray / one process (mean of both passes): {on_ray / baseline:.2f}x")
    print(f"largest |difference| between the two stores' vectors: {gap:.2e}")


if __name__ == "__main__":
    main()
