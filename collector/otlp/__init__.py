"""The OTLP/HTTP trace receiver: spans of LLM calls become records, evaluations become feedback.

``wire`` decodes and answers OTLP/HTTP bodies, ``attributes`` reads span attributes,
``mapping`` turns spans into records (one adapter per convention family), ``feedback`` turns
evaluation events and annotation attributes into feedback, and ``receiver`` is the route.
"""
