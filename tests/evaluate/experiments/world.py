"""A running world for experiment tests: the fake provider behind a gateway YAML, a fake judge,
and the ``llmscope experiment`` command pointed at a seeded store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from llmscope.app.cli import main
from llmscope.db import make_engine, make_sessionmaker
from tests.analysis.http_fakes import FakeLLM, fake_llm
from tests.collector.gateway.fake_provider import FakeProvider, serving
from tests.conftest import free_port
from tests.evaluate.evaluations.support import grade
from tests.evaluate.experiments.support import write_config

N = 24  # records in cluster 0 of the seeded run


@dataclass
class World:
    config: Path
    provider: FakeProvider
    judge: FakeLLM
    url: str

    def run(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(["experiment", *args, "--database-url", self.url])
        out, err = capsys.readouterr()
        return code, out, err

    def experiment(self, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
        code, out, err = self.run(
            capsys, "run", "--cluster", "0", "--config", str(self.config), "--json", *args
        )
        assert code == 0, err
        return json.loads(out)


@contextmanager
def world(
    url: str, tmp_path: Path, extra_prompts: str = "", *, delay: float = 0.0, tail: str = ""
) -> Iterator[World]:
    """``delay``: seconds the fake provider waits per call; ``tail``: YAML appended to the
    config (a ``routes:`` section, say)."""
    provider = FakeProvider(delay=delay)
    with serving(provider.app, free_port()) as app_url, fake_llm(default=grade) as judge:
        config = write_config(tmp_path / "gw.yaml", app_url, judge.url, extra_prompts)
        if tail:
            config.write_text(config.read_text(encoding="utf-8") + tail, encoding="utf-8")
        yield World(config, provider, judge, url)


def rows(url: str, model: type, *where: object) -> list:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        found = list(session.scalars(select(model).where(*where)))
    engine.dispose()
    return found
