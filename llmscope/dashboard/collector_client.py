"""The dashboard's one door to the collector: start an experiment and follow it over HTTP.

The dashboard only reads the store; an experiment calls LLMs through the collector's gateway,
so the "Try a fix" panel asks the collector (``LLMSCOPE_COLLECTOR_URL``, with
``LLMSCOPE_COLLECTOR_API_KEY`` once API keys exist) rather than importing it. Every failure is a
:class:`CollectorError` whose message a person can act on: the collector's own one-line reason
for a refused request, or how to reach or configure the collector.
"""

from __future__ import annotations

from typing import Any

import httpx

from llmscope.experiment_report import ExperimentRequest, ExperimentStatus

TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class CollectorError(Exception):
    """The collector refused, or could not be asked; the message says which and why."""


class CollectorClient:
    """Experiments over the collector's REST API (``/api/v1/experiments``)."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = httpx.request(
                method, self.url + path, json=body, headers=self.headers, timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise CollectorError(
                f"cannot reach the collector at {self.url} ({type(exc).__name__}): start "
                "llmscope serve --config gateway.yaml there, or point the dashboard at it with "
                "--collector-url (LLMSCOPE_COLLECTOR_URL)"
            ) from None
        if response.status_code >= 400:
            raise CollectorError(_reason(response))
        return response.json()

    def options(self) -> dict[str, Any]:
        """The templates, endpoints/routes and evaluators a variant can name."""
        found: dict[str, Any] = self._call("GET", "/api/v1/experiments/options")
        return found

    def start(self, request: ExperimentRequest) -> ExperimentStatus:
        body = request.model_dump(mode="json", exclude_none=True)
        return ExperimentStatus.model_validate(self._call("POST", "/api/v1/experiments", body))

    def status(self, experiment_id: str) -> ExperimentStatus:
        found = self._call("GET", f"/api/v1/experiments/{experiment_id}/status")
        return ExperimentStatus.model_validate(found)


def _reason(response: httpx.Response) -> str:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    message = message or response.text[:300] or response.reason_phrase
    if response.status_code == 401:
        return f"the collector needs an API key: set LLMSCOPE_COLLECTOR_API_KEY ({message})"
    if response.status_code == 403:
        return f"the collector refused the dashboard's API key: {message}"
    return str(message)
