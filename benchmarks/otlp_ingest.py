"""OTLP ingest throughput: LLM spans/s through POST /v1/traces vs the same calls through the
record batch API (POST /api/v1/records), the baseline, on a real ``llmscope serve``.

Each span carries the current GenAI attributes of a chat call (messages as JSON, a template,
tokens); exports are protobuf + gzip with 512 spans each (the OpenTelemetry batch processor's
default), sent by C concurrent clients; the baseline posts the equivalent records as JSON in
batches of the same size. Bodies are built before the clock starts. Every acknowledged span
must be in the store afterwards.

    python benchmarks/otlp_ingest.py --spans 20000 \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
from pathlib import Path

from common import (  # the sibling benchmarks' helpers
    collector,
    count_records,
    fresh_database,
    post_all,
)
from ingest import make_records
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

T0 = 1_795_000_000_000_000_000


def _kv(key: str, value: str | int) -> KeyValue:
    any_value = (
        AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    )
    return KeyValue(key=key, value=any_value)


def otlp_bodies(records: list[dict], batch: int) -> list[bytes]:
    bodies = []
    for start in range(0, len(records), batch):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(_kv("service.name", "chat"))
        scope = resource_spans.scope_spans.add()
        for i, r in enumerate(records[start : start + batch], start):
            messages = [
                {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                for m in r["messages"]
            ]
            output = [{"role": "assistant", "parts": [{"type": "text", "content": r["response"]}]}]
            scope.spans.add(
                trace_id=i.to_bytes(16, "big"),
                span_id=(i + 1).to_bytes(8, "big"),
                name="chat gpt-4o-mini",
                start_time_unix_nano=T0 + i * 1_000_000,
                end_time_unix_nano=T0 + i * 1_000_000 + int(r["latency_ms"] * 1_000_000),
                attributes=[
                    _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.provider.name", r["provider"]),
                    _kv("gen_ai.request.model", r["model"]),
                    _kv("gen_ai.usage.input_tokens", r["input_tokens"]),
                    _kv("gen_ai.usage.output_tokens", r["output_tokens"]),
                    _kv("gen_ai.input.messages", json.dumps(messages)),
                    _kv("gen_ai.output.messages", json.dumps(output)),
                    _kv("gen_ai.prompt.name", "support"),
                    _kv("gen_ai.prompt.version", "3"),
                    _kv("gen_ai.prompt.variable.question", r["template"]["variables"]["question"]),
                    _kv("gen_ai.conversation.id", r["session_id"]),
                    _kv("user.id", r["user_id"]),
                ],
            )
        bodies.append(gzip.compress(request.SerializeToString()))
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--postgres-url", default=os.environ.get("LLMSCOPE_TEST_DATABASE_URL"))
    args = parser.parse_args()

    records = make_records(args.spans)
    traces = otlp_bodies(records, args.batch)
    batches = [
        json.dumps({"records": records[i : i + args.batch]}).encode()
        for i in range(0, len(records), args.batch)
    ]
    print(f"{args.spans} LLM calls, {args.batch} per request, {args.clients} clients")
    print(f"{'store':<11} {'OTLP spans/s':>13} {'REST records/s (baseline)':>26} {'ratio':>6}")
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            rates = []
            for path, bodies, headers in (
                (
                    "/v1/traces",
                    traces,
                    {"content-type": "application/x-protobuf", "content-encoding": "gzip"},
                ),
                ("/api/v1/records", batches, {"content-type": "application/json"}),
            ):
                url, cleanup = fresh_database(kind, args.postgres_url, Path(workdir))
                try:
                    with collector(url) as (base, _):
                        elapsed = post_all(base, path, bodies, headers, args.clients)
                    if (count := count_records(url)) != args.spans:
                        raise RuntimeError(f"{path}: stored {count} of {args.spans}")
                finally:
                    cleanup()
                rates.append(args.spans / elapsed)
            print(f"{kind:<11} {rates[0]:>13,.0f} {rates[1]:>26,.0f} {rates[0] / rates[1]:>6.2f}")


if __name__ == "__main__":
    main()
