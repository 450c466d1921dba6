"""Delivering one alert to a webhook: a JSON POST, retried with backoff, never raising.

Shared by every part that raises alerts (the analysis' cluster alerts, the collector's budget
alerts), so retries and the recorded outcome are the same everywhere.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = ["deliver", "overall"]


def deliver(
    client: httpx.Client, url: str, payload: dict[str, Any], attempts: int, backoff_s: float
) -> dict[str, Any]:
    """POST ``payload`` as JSON, retrying transport errors, 429 and 5xx with backoff."""
    error = ""
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(backoff_s * 2 ** (attempt - 2))
        try:
            response = client.post(url, json=payload)
        except httpx.HTTPError as exc:
            # The URL is a secret (Slack's carries its token): the stored outcome never shows it.
            error = f"{type(exc).__name__}: {exc}".replace(url, "[webhook URL]")
            continue
        if response.is_success:
            return {"status": "sent", "attempts": attempt, "http_status": response.status_code}
        error = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code != 429 and response.status_code < 500:
            # The receiver refused this payload; sending it again will not help.
            return {"status": "failed", "attempts": attempt, "error": error}
    return {"status": "failed", "attempts": attempts, "error": error}


def overall(results: dict[str, dict[str, Any]]) -> str:
    """An alert's ``delivery_status`` from its per-destination results."""
    if not results:
        return "logged"
    sent = [r["status"] == "sent" for r in results.values()]
    return "sent" if all(sent) else "partial" if any(sent) else "failed"
