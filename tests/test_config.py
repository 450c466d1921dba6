"""Settings: every field documented, the docs' configuration table generated from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmscope.config import Settings, settings_table

CONFIGURATION_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"


def test_every_setting_has_a_description() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_docs_configuration_table_matches_the_settings() -> None:
    text = CONFIGURATION_PAGE.read_text()
    block = text.split("<!-- settings:start -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert block == settings_table(), "regenerate with: python -m llmscope.config"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSCOPE_DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    monkeypatch.setenv("LLMSCOPE_MAX_BATCH_RECORDS", "7")
    settings = Settings()
    assert settings.database_url == "sqlite:////tmp/elsewhere.db"
    assert settings.max_batch_records == 7


def test_default_store_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSCOPE_DATABASE_URL", raising=False)
    assert Settings().database_url.startswith("sqlite:///")
    assert Settings().database_url.endswith("llmscope.db")


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="embed_field"):
        Settings(embed_field="everything")
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(max_body_bytes=0)
