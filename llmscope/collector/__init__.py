"""The collector: records every LLM call and its feedback (REST ingest, gateway, OTLP).

It writes to the store and never imports the analysis, the dashboard or the judge-and-fix
loop (``llmscope.evaluate``); ``llmscope.app.server`` assembles it into the server.
"""
