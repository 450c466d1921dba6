"""Settings: every field documented, the docs' configuration table generated from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from llmscope.config import Settings, revealed, settings_table

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


SECRETS = {
    "collector_api_key": "lsk_collector_SECRET1",
    "summary_llm_api_key": "sk-summary-SECRET2",
    "alert_webhook_url": "https://hooks.example.com/SECRET3",
    "alert_slack_webhook_url": "https://hooks.slack.com/services/T0/B0/SECRET4",
    "dashboard_secret_key": "cookie-signing-SECRET5",
}


def test_keys_and_webhook_urls_are_secrets_that_never_print(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"LLMSCOPE_{name.upper()}", value)
    settings = Settings()
    shown = [repr(settings), str(settings), settings.model_dump_json(), settings_table()]
    for value in SECRETS.values():
        assert not any(value in text for text in shown), value
    # Where they are sent, they are there.
    assert {name: revealed(getattr(settings, name)) for name in SECRETS} == SECRETS
    # A key or webhook added later is a secret too, or this names it.
    named_like_secrets = {
        name
        for name in Settings.model_fields
        if name.endswith(("_key", "_secret", "_token", "_password", "webhook_url"))
    }
    assert named_like_secrets == set(SECRETS)
    assert all(Settings.model_fields[n].annotation == SecretStr | None for n in SECRETS)
