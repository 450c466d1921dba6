"""The collector: records every LLM call and its feedback (REST ingest, gateway, OTLP).

It writes to the store and never imports the analysis or the dashboard.
"""

from llmscope.collector.app import create_app

__all__ = ["create_app"]
