"""The OTLP/HTTP trace receiver: spans of LLM calls become records, evaluation events and
annotations become evaluations (a person's annotation, feedback).

``wire`` decodes and answers OTLP/HTTP bodies, ``attributes`` reads span attributes,
``conventions`` holds one adapter per convention family (``messages``: GenAI message shapes and
tool calls), ``mapping`` turns a span into a record, ``feedback`` turns evaluation events and
annotation attributes into evaluations and feedback events, ``batch`` maps one export, and
``receiver`` is the route; the records, evaluations and feedback are stored through the write
path, ``llmscope.collector.ingest``.
"""
