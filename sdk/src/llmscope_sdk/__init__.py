"""llmscope's light Python SDK: what an app imports to send its LLM calls to the collector.

    from llmscope_sdk import Client
    client = Client("http://127.0.0.1:5000")
    record_id = client.log(endpoint="chat", model="gpt-4o-mini", prompt="Hi", response="Hello!")
    client.feedback(record_id, "down", tags=["incorrect"])

``Client`` (``client.py``) sends records and feedback in batches from a background thread,
never raising into nor blocking the app; ``configure_tracing`` (``tracing.py``) points an
OpenTelemetry tracer provider at the collector instead. ``records.py`` owns the wire shapes
of a record and of feedback, which the collector imports too; ``settings.py`` reads
``LLMSCOPE_COLLECTOR_URL`` and ``LLMSCOPE_COLLECTOR_API_KEY``.

A separate distribution (``pip install ./sdk``, ``llmscope-sdk``) that needs only httpx and
pydantic: none of the server, the analysis stack or the dashboard.
"""

from llmscope_sdk.client import Client
from llmscope_sdk.tracing import configure_tracing

__all__ = ["Client", "configure_tracing"]
