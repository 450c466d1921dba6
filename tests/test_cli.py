"""The ``llmscope`` command: one-line errors with exit 2, and the store commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from llmscope.db import make_engine

pytestmark = pytest.mark.e2e


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmscope", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--database-url", "not a url"], "--database-url"),
        (["serve", "--database-url", "mysql://x/y"], "unsupported database"),
        (["serve", "--config", "/nonexistent/gateway.yaml"], "--config"),
        (["serve", "--workers", "0"], "--workers"),
        (["dashboard", "--collector-url", "localhost:5000"], "--collector-url"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], needle: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'store.db'}"
    result = run("db", "upgrade", "--database-url", url)
    assert result.returncode == 0, result.stderr
    tables = set(inspect(make_engine(url)).get_table_names())
    assert {"records", "feedback", "analysis_runs", "alembic_version"} <= tables
    # idempotent
    assert run("db", "upgrade", "--database-url", url).returncode == 0


def test_unreachable_store_is_one_line_and_exit_1() -> None:
    result = run("db", "upgrade", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot open the store" in result.stderr
