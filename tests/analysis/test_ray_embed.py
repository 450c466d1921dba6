"""``llmscope embed --ray``: Ray Data on a local 2-CPU Ray instance fills the cache once, with
the vectors the local torch path computes."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
import ray
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import text_hash
from llmscope.analysis.encoders import encoder_for
from llmscope.analysis.ray_embed import embed_with_ray
from llmscope.app.cli import main
from llmscope.config import Settings
from llmscope.db.models import Embedding, Record
from tests.analysis.test_job import model  # noqa: F401  (the session's loaded model)
from tests.analysis.traffic import NOW, TOPICS
from tests.conftest import count_rows

SINCE = (NOW - timedelta(days=8)).isoformat()
# 50 distinct texts of different lengths (so actor batches pad differently from the local path).
TEXTS = [
    f"{opening}{q}"
    for opening in ("", "Hi, ", "Please help: ")
    for qs in TOPICS.values()
    for q in qs
][:50]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray instance with 2 CPUs for the module (started once: ~10 s), then stopped."""
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def _seed(engine: Engine) -> None:
    with Session(engine) as session:
        for i, text in enumerate(TEXTS):
            session.add(Record(id=f"r{i:02d}", timestamp=NOW - timedelta(hours=1), prompt=text))
        # An internal record and a repeat of a text: neither adds a text to embed.
        session.add(Record(id="internal", timestamp=NOW, prompt="internal call", internal=True))
        session.add(Record(id="repeat", timestamp=NOW, prompt=TEXTS[0]))
        session.commit()


@pytest.mark.slow
def test_ray_fills_the_cache_with_the_local_vectors_once(
    settings: Settings,
    engine: Engine,
    ray_address: str,
    model: None,  # noqa: F811
) -> None:
    _seed(engine)
    # The CLI as a second driver on the running cluster, as on a real one.
    done = subprocess.run(
        [sys.executable, "-m", "llmscope", "embed", "--ray", ray_address, "--ray-actors", "2"]
        + ["--batch-size", "8", "--since", SINCE, "--database-url", settings.database_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "51 records, 50 texts embedded (all-MiniLM-L6-v2) on Ray" in done.stderr
    with Session(engine) as session:
        cached = dict(session.execute(select(Embedding.text_hash, Embedding.vector)).all())
    assert set(cached) == {text_hash(t) for t in TEXTS}
    local = encoder_for(settings).encode(TEXTS)
    on_ray = np.vstack([np.frombuffer(cached[text_hash(t)], dtype="<f4") for t in TEXTS])
    assert np.abs(on_ray - local).max() < 1e-5
    # A second run over the same records embeds nothing new.
    with Session(engine) as session:
        again = embed_with_ray(
            session, settings, encoder_for(settings), since=NOW - timedelta(days=8)
        )
    assert (again.records, again.embedded) == (51, 0)
    assert count_rows(engine, Embedding) == 50


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ray", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
        (["--ray", "nowhere"], "expected HOST:PORT"),
        (["--ray", "local:zero"], "local:N needs a number of CPUs"),
        (["--ray", "local:2", "--follow"], "--ray embeds once"),
        (["--ray-actors", "2"], "apply to --ray only"),
    ],
)
def test_bad_ray_arguments_exit_2_and_write_nothing(
    settings: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    _seed(engine)
    assert main(["embed", *args, "--since", SINCE, "--database-url", settings.database_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert count_rows(engine, Embedding) == 0


def test_missing_ray_or_a_gateway_model_exit_2(
    settings: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = ["--since", SINCE, "--database-url", settings.database_url]
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    assert main(["embed", "--ray", "auto", *url]) == 2
    assert "pip install 'llmscope[ray]'" in capsys.readouterr().err
    monkeypatch.setenv("LLMSCOPE_EMBEDDING_MODEL", "gateway:embed")
    assert main(["embed", "--ray", "auto", *url]) == 2
    assert "embeds through the gateway already" in capsys.readouterr().err
    assert count_rows(engine, Embedding) == 0
