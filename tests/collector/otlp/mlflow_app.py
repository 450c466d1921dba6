"""A small app traced by the real MLflow (autolog and manual spans), exporting over OTLP.

Run as a child process (MLflow's tracer is process-global): ``python -m
tests.collector.otlp.mlflow_app PROVIDER_URL``, with ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
pointing at the collector. It makes one OpenAI call under ``mlflow.openai.autolog()`` (inside an
AGENT span with a session and user), one LangChain ``ChatOpenAI`` call under
``mlflow.langchain.autolog()``, and one hand-made Anthropic-format CHAT_MODEL span with a linked
prompt; then flushes.
"""

from __future__ import annotations

import sys

import mlflow
import openai
from langchain_openai import ChatOpenAI
from mlflow.entities import SpanType
from mlflow.tracing.provider import provider

from tests.collector.gateway.fake_provider import OPENAI_KEY

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def main(provider_url: str) -> None:
    mlflow.openai.autolog()
    mlflow.langchain.autolog()
    client = openai.OpenAI(base_url=f"{provider_url}/v1", api_key=OPENAI_KEY, max_retries=0)
    with mlflow.start_span("support-agent", span_type=SpanType.AGENT) as agent:
        agent.set_attributes({"session.id": "sess-42", "user.id": "user-7"})
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],
        )
    chat = ChatOpenAI(
        base_url=f"{provider_url}/v1", api_key=OPENAI_KEY, model="gpt-4o-mini", max_retries=0
    )
    chat.invoke("How do I reset my password?")
    with mlflow.start_span("claude", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs(
            {
                "model": "claude-3-5-haiku-latest",
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "Where is my order?"}],
            }
        )
        span.set_outputs(
            {
                "type": "message",
                "content": [{"type": "text", "text": "It ships tomorrow."}],
                "usage": {"input_tokens": 12, "output_tokens": 5},
            }
        )
        span.set_attributes(
            {
                "mlflow.message.format": "anthropic",
                "mlflow.llm.model": "claude-3-5-haiku-latest",
                "mlflow.llm.provider": "anthropic",
                "mlflow.chat.tokenUsage": {"input_tokens": 12, "output_tokens": 5},
                "mlflow.linkedPrompts": [{"name": "order-status", "version": "3"}],
                "session.id": "sess-43",
                "user.id": "user-8",
            }
        )
    provider.get().force_flush()


if __name__ == "__main__":
    main(sys.argv[1])
