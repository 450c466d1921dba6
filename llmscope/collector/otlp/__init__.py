"""The OTLP/HTTP trace receiver: spans of LLM calls become records, evaluations become feedback.

``wire`` decodes and answers OTLP/HTTP bodies, ``attributes`` reads span attributes,
``conventions`` holds one adapter per convention family (``messages``: GenAI message shapes),
``mapping`` turns a span into a record, ``feedback`` turns evaluation events and annotation
attributes into feedback events, ``batch`` maps one export, and ``receiver`` is the route; the
records and feedback are stored through the write path, ``llmscope.collector.ingest``.
"""
