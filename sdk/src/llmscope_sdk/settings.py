"""Where the SDK sends to when the app does not say: ``LLMSCOPE_COLLECTOR_URL`` and
``LLMSCOPE_COLLECTOR_API_KEY``, from the environment or a ``.env`` line, as llmscope reads
every setting (the server's ``llmscope.config.Settings`` documents the same two variables).

Only these two are read, so no other ``LLMSCOPE_*`` variable, broken or not, can affect the
app; and a problem reading them falls back to the defaults instead of raising into the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_URL = "http://127.0.0.1:5000"


class ClientSettings(BaseSettings):
    """The collector the SDK talks to, read from ``LLMSCOPE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LLMSCOPE_", env_file=".env", extra="ignore")

    collector_url: str = Field(default=DEFAULT_URL, description="Base URL of the collector.")
    collector_api_key: str | None = Field(default=None, description="Bearer key, if any.")


@dataclass(frozen=True)
class Target:
    """A resolved collector: its base URL (no trailing slash) and the headers to send."""

    url: str
    headers: dict[str, str] | None


def resolve(url: str | None, api_key: str | None) -> Target:
    """What the caller gave, else the environment (or ``.env``), else the defaults."""
    if url is None or api_key is None:
        try:
            settings = ClientSettings()
        except (ValidationError, OSError, UnicodeDecodeError):  # must not break the app
            settings = ClientSettings.model_construct()  # the defaults
        url = url or settings.collector_url
        api_key = api_key or settings.collector_api_key
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return Target((url or DEFAULT_URL).rstrip("/"), headers)
