"""``llmscope serve``: the collector (ingest, feedback, OTLP and, with a config, the gateway)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from llmscope.cli import (
    UsageError,
    add_database_url,
    add_insecure,
    announce_store,
    port_number,
    prepare_store,
    refuse_open_bind,
    settings_from,
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = subparsers.add_parser("serve", help="run the collector")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=5000, help="port to bind (default 5000)")
    serve.add_argument("--config", metavar="YAML", help="gateway config (MLflow AI Gateway YAML)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    add_insecure(serve)
    add_database_url(serve)
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers < 1:
        raise UsageError("--workers: must be at least 1")
    if args.config:
        config = Path(args.config)
        if not config.is_file():
            raise UsageError(f"--config: no such file: {args.config}")
        os.environ["LLMSCOPE_GATEWAY_CONFIG"] = str(config.resolve())
    settings = settings_from(args)
    if settings.gateway_config:
        from llmscope.collector.gateway.config import ConfigError, load_config

        try:
            loaded = load_config(settings.gateway_config)
        except ConfigError as exc:
            raise UsageError(f"--config: {exc}") from None
        names = [e.name for e in loaded.endpoints] + [r.name for r in loaded.routes]
        print(
            f"llmscope serve: gateway config {settings.gateway_config}: "
            f"{len(names)} endpoint{'s' if len(names) != 1 else ''}: {', '.join(names) or '-'}",
            file=sys.stderr,
            flush=True,
        )
    announce_store(settings, "serve")
    prepare_store(settings)
    refuse_open_bind(args.host, args.insecure, settings.database_url)
    several = args.workers > 1 and settings.metrics
    shared = shared_metrics_dir(settings.data_dir) if several else None
    try:
        uvicorn.run(
            "llmscope.app.server:create_app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            access_log=False,
        )
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
    return 0


def shared_metrics_dir(data_dir: Path) -> Path | None:
    """A fresh directory for prometheus-client's multiprocess mode, exported to the workers.

    ``GET /metrics`` then answers the sum over all worker processes, whichever one serves it.
    Directories left by ``serve`` processes that are gone are removed. Returns the directory to
    remove at the end, or None when ``PROMETHEUS_MULTIPROC_DIR`` was already set by the user.
    """
    from llmscope.collector.ingest.recorder import pid_alive

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    root = data_dir / "metrics"
    for old in root.glob("serve-*") if root.is_dir() else []:
        pid = old.name.removeprefix("serve-")
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    directory = root / f"serve-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory
