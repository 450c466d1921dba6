"""OTLP over gRPC vs OTLP/HTTP: LLM spans/s through TraceService/Export on the gRPC port against
the same exports through POST /v1/traces (the baseline), on one real ``llmscope serve``.

The exports are those of ``otlp_ingest.py`` (current GenAI attributes, 512 spans each, gzip):
over HTTP the gzip bodies are built before the clock starts, over gRPC the client's grpc
compresses each message (gzip) as an exporter configured for it does. C concurrent clients, each
with its own connection; RESOURCE_EXHAUSTED and UNAVAILABLE (like 429 and 503) are retried after
a pause. Each protocol gets a fresh store and must leave every span in it. The CPU seconds the
``serve`` process tree spent are printed too: under a busy machine's load they are the steadier
measure of the server's cost.

    python benchmarks/otlp_grpc.py --spans 20000 \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

import grpc
from common import (  # the sibling benchmarks' helpers
    collector,
    count_records,
    free_port,
    fresh_database,
    post_all,
    split_among_threads,
    tree_cpu_seconds,
)
from ingest import make_records
from otlp_ingest import otlp_bodies

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRY = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}


def export_all(target: str, messages: list[bytes], clients: int) -> float:
    """Export every message from ``clients`` threads over gRPC (gzip); seconds taken."""
    errors: list[str] = []

    def worker(mine: list[bytes]) -> None:
        with grpc.insecure_channel(target, compression=grpc.Compression.Gzip) as channel:
            call = channel.unary_unary(EXPORT)  # raw bytes in and out
            for message in mine:
                while True:
                    try:
                        call(message, timeout=120)
                        break
                    except grpc.RpcError as exc:
                        if exc.code() not in _RETRY:  # type: ignore[attr-defined]
                            errors.append(f"{exc.code()} {exc.details()}")  # type: ignore[attr-defined]
                            break
                        time.sleep(1)

    return split_among_threads(messages, clients, worker, errors, "exports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--postgres-url", default=os.environ.get("LLMSCOPE_TEST_DATABASE_URL"))
    args = parser.parse_args()

    bodies = otlp_bodies(make_records(args.spans), args.batch)
    messages = [gzip.decompress(body) for body in bodies]
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
    print(f"{args.spans} LLM calls, {args.batch} per export, {args.clients} clients")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"{'store':<11} {'gRPC spans/s':>13} {'HTTP spans/s (baseline)':>24} {'ratio':>6}"
        f" {'gRPC server CPU s':>18} {'HTTP server CPU s':>18}"
    )
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            rates, cpu = [], []
            for protocol in ("grpc", "http"):
                url, cleanup = fresh_database(kind, args.postgres_url, Path(workdir))
                port = free_port()
                try:
                    with collector(url, env={"LLMSCOPE_OTLP_GRPC_PORT": str(port)}) as (base, proc):
                        before = tree_cpu_seconds(proc.pid)
                        if protocol == "grpc":
                            elapsed = export_all(f"127.0.0.1:{port}", messages, args.clients)
                        else:
                            elapsed = post_all(base, "/v1/traces", bodies, headers, args.clients)
                        cpu.append(tree_cpu_seconds(proc.pid) - before)
                    if (count := count_records(url)) != args.spans:
                        raise RuntimeError(f"{protocol}: stored {count} of {args.spans}")
                finally:
                    cleanup()
                rates.append(args.spans / elapsed)
            print(
                f"{kind:<11} {rates[0]:>13,.0f} {rates[1]:>24,.0f} {rates[0] / rates[1]:>6.2f}"
                f" {cpu[0]:>18.1f} {cpu[1]:>18.1f}"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
