"""Incremental embedding (``embed_new_records``) and ``llmscope embed``, on every backend."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import load_model, text_hash
from llmscope.analysis.encoders import TorchEncoder, encoder_for
from llmscope.analysis.incremental import embed_new_records
from llmscope.app.cli import main
from llmscope.config import Settings
from llmscope.db.models import Embedding, Record
from tests.analysis.test_job import model  # noqa: F401  (the session's loaded model)
from tests.analysis.traffic import NOW, seed_traffic
from tests.conftest import count_rows, start_cli_server

SINCE = (NOW - timedelta(days=8)).isoformat()


def _distinct_prompts(engine: Engine, *, internal: bool = False) -> set[str]:
    with Session(engine) as session:
        rows = session.execute(
            select(Record.prompt).where(
                Record.internal.is_(internal), Record.timestamp >= NOW - timedelta(days=8)
            )
        )
        return {str(p).strip() for (p,) in rows}


def test_embed_new_records_fills_the_cache_once(
    settings: Settings,
    engine: Engine,
    model: None,  # noqa: F811
) -> None:
    seed_traffic(engine, per_window=30)
    prompts = _distinct_prompts(engine)
    encoder = encoder_for(settings)
    assert isinstance(encoder, TorchEncoder) and encoder.key == "all-MiniLM-L6-v2"
    with Session(engine) as session:
        first = embed_new_records(session, settings, since=NOW - timedelta(days=8))
        again = embed_new_records(session, settings, since=NOW - timedelta(days=8))
    assert first.records == 60 and first.embedded == len(prompts)
    assert again.records == 60 and again.embedded == 0
    with Session(engine) as session:
        cached = dict(session.execute(select(Embedding.text_hash, Embedding.vector)).all())
    # Exactly the analysed texts: internal calls and the 30-day-old record are not embedded.
    assert set(cached) == {text_hash(p) for p in prompts}
    assert not {text_hash(p) for p in _distinct_prompts(engine, internal=True)} & set(cached)
    text = sorted(prompts)[0]
    reference = load_model("all-MiniLM-L6-v2").encode([text], normalize_embeddings=True)[0]
    vector = np.frombuffer(cached[text_hash(text)], dtype="<f4")
    assert float(vector @ reference) > 0.9999


def test_received_after_reads_only_newer_records(
    settings: Settings,
    engine: Engine,
    model: None,  # noqa: F811
) -> None:
    seed_traffic(engine, per_window=12)
    with Session(engine) as session:
        done = embed_new_records(session, settings, since=NOW - timedelta(days=8))
        assert done.newest_received is not None
        later = embed_new_records(
            session, settings, since=NOW - timedelta(days=8), received_after=done.newest_received
        )
        assert later.records == 0 and later.embedded == 0
        session.add(
            Record(
                id="late",
                timestamp=NOW - timedelta(hours=1),
                received_at=done.newest_received + timedelta(seconds=1),
                prompt="Where is the nearest cash machine?",
            )
        )
        session.commit()
        later = embed_new_records(
            session, settings, since=NOW - timedelta(days=8), received_after=done.newest_received
        )
    assert later.records == 1 and later.embedded == 1


def test_embed_command_then_bad_arguments(
    settings: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    model: None,  # noqa: F811
) -> None:
    seed_traffic(engine, per_window=15)
    url = ["--database-url", settings.database_url]
    assert main(["embed", "--since", SINCE, *url]) == 0
    assert count_rows(engine, Embedding) == len(_distinct_prompts(engine))
    assert "texts embedded" in capsys.readouterr().err
    before = count_rows(engine, Embedding)
    for bad in (["--since", "yesterday"], ["--since", SINCE, "--until", SINCE]):
        assert main(["embed", *bad, *url]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--since" in err[0]
    assert count_rows(engine, Embedding) == before


@pytest.mark.e2e
def test_embed_follow_embeds_records_as_they_arrive(settings: Settings, engine: Engine) -> None:
    seed_traffic(engine, per_window=6)
    since = (NOW - timedelta(days=8)).isoformat()
    proc = start_cli_server(
        ["embed", "--follow", "--interval", "0.2", "--since", since],
        env={"LLMSCOPE_DATABASE_URL": settings.database_url, "HF_HUB_OFFLINE": "1"},
    )
    try:
        expected = len(_distinct_prompts(engine))
        _wait_for(lambda: count_rows(engine, Embedding) == expected, proc)
        with Session(engine) as session:
            session.add(
                Record(id="new-1", timestamp=NOW, prompt="Can I pay my rent with a credit card?")
            )
            session.commit()
        _wait_for(lambda: count_rows(engine, Embedding) == expected + 1, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    with Session(engine) as session:
        new = text_hash("Can I pay my rent with a credit card?")
        assert session.get(Embedding, ("all-MiniLM-L6-v2", new)) is not None


def _wait_for(condition: object, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0].decode()
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise TimeoutError("the embed process did not catch up in time")
