"""``configure_tracing``: point an OpenTelemetry tracer provider at the collector's OTLP/HTTP
receiver (``/v1/traces``, gzip, batched), so GenAI, OpenInference and OpenLLMetry
instrumentations report their LLM calls to llmscope.

OpenTelemetry is imported when the function is called, not when the SDK is: apps that only log
records do not need it (``pip install "llmscope-sdk[otel]"`` brings it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmscope_sdk.settings import resolve

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["configure_tracing"]

_MISSING = (
    "configure_tracing needs the OpenTelemetry SDK and its OTLP/HTTP exporter: "
    'pip install "llmscope-sdk[otel]" (missing: {})'
)


def configure_tracing(
    url: str | None = None,
    *,
    api_key: str | None = None,
    service_name: str | None = None,
    tracer_provider: TracerProvider | None = None,
    set_global: bool = True,
) -> TracerProvider:
    """Send OpenTelemetry spans to the collector's ``/v1/traces`` (OTLP/HTTP, gzip, batched).

    Adds a batch span processor with an OTLP/HTTP exporter to ``tracer_provider`` (or to a new
    provider for ``service_name``, made the global one unless ``set_global=False``) and
    returns the provider. ``url`` and ``api_key`` default to ``LLMSCOPE_COLLECTOR_URL`` and
    ``LLMSCOPE_COLLECTOR_API_KEY``. Raises ``ImportError`` naming the extra to install when
    OpenTelemetry is missing.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(_MISSING.format(exc.name or exc)) from exc

    target = resolve(url, api_key)
    exporter = OTLPSpanExporter(
        endpoint=f"{target.url}/v1/traces",
        headers=target.headers,
        compression=Compression.Gzip,
    )
    provider = tracer_provider
    if provider is None:
        attributes = {"service.name": service_name} if service_name else {}
        provider = TracerProvider(resource=Resource.create(attributes))
        if set_global:
            trace.set_tracer_provider(provider)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
