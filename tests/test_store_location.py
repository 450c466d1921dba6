"""Silent store traps: every command says where its store is; readers create no directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmscope.app.cli import main
from llmscope.config import store_location
from tests.conftest import free_port, start_cli_server

WINDOWS = ["--baseline", "2026-11-12T12:00:00Z/2026-11-19T12:00:00Z",
           "--current", "2026-11-19T12:00:00Z/2026-11-20T12:00:00Z"]  # fmt: skip


def test_a_relative_sqlite_path_is_said_with_the_file_it_resolved_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    code = main(["analyze", *WINDOWS, "--database-url", "sqlite:///tmp/x.db"])
    err = capsys.readouterr().err
    assert code == 1  # the new store is empty
    resolved = tmp_path / "tmp" / "x.db"
    assert f"llmscope analyze: store: SQLite file {resolved}\n" in err
    warning = next(line for line in err.splitlines() if "warning" in line)
    assert "relative" in warning and str(resolved) in warning and "sqlite:////" in warning


def test_an_absolute_sqlite_path_gets_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["analyze", *WINDOWS, "--database-url", f"sqlite:///{tmp_path / 'x.db'}"])
    err = capsys.readouterr().err
    assert f"store: SQLite file {tmp_path / 'x.db'}" in err and "warning" not in err


@pytest.mark.parametrize(
    "command",
    [["analyze", *WINDOWS], ["export", "clusters", "-o", "/dev/null"], ["dashboard"]],
    ids=["analyze", "export", "dashboard"],
)
def test_readers_refuse_a_sqlite_file_in_a_missing_directory(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main([*command, "--database-url", "sqlite:///nowhere/x.db"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"no directory {tmp_path / 'nowhere'}" in err[0] and err[0].startswith("llmscope ")
    assert not (tmp_path / "nowhere").exists()


def test_a_server_url_is_shown_without_its_password() -> None:
    location = store_location("postgresql+psycopg://me:s3cret@db.internal:5432/llmscope")
    assert location.path is None and not location.relative and location.warning() is None
    assert (
        "s3cret" not in location.describe() and "db.internal:5432/llmscope" in location.describe()
    )
    assert store_location("sqlite://").describe() == "sqlite://"


def test_serve_says_its_store_and_the_endpoints_it_loaded(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "endpoints:\n"
        "  - {name: support, endpoint_type: llm/v1/chat, model: {provider: offline, name: m}}\n"
        "  - {name: search, endpoint_type: llm/v1/chat, model: {provider: offline, name: m}}\n"
    )
    store = tmp_path / "s.db"
    text = _said_on_start(
        ["serve", "--config", str(config), "--database-url", f"sqlite:///{store}"], "store:"
    )
    assert "2 endpoints: support, search" in text and str(config) in text
    assert f"llmscope serve: store: SQLite file {store}" in text


def test_the_worker_says_its_store_and_warns_of_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    text = _said_on_start(
        ["worker", "--database-url", "sqlite:///w/x.db", "--analyze-every", "1h"], "warning"
    )
    assert f"llmscope worker: store: SQLite file {tmp_path / 'w' / 'x.db'}" in text
    assert f"it resolved to {tmp_path / 'w' / 'x.db'}" in text


def _said_on_start(args: list[str], marker: str) -> str:
    """What ``llmscope <args> --port FREE`` prints up to its first line holding ``marker``."""
    proc = start_cli_server([*args, "--port", str(free_port())])
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode().rstrip())
            if marker in lines[-1]:
                return "\n".join(lines)
        raise AssertionError(f"no {marker!r} line in {lines}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
