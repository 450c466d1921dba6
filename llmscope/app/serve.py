"""``llmscope serve``: the collector (ingest, feedback, OTLP and, with a config, the gateway).

OTLP/gRPC runs in every uvicorn worker process, each on the same port with ``SO_REUSEPORT``
when there are several (the kernel spreads the exporters' connections over the workers, as
uvicorn's shared socket spreads the HTTP ones). The alternative, one gRPC server in one process,
would funnel every gRPC export through one worker while HTTP has N. Because a shared port would
also silently share with any other process listening with ``SO_REUSEPORT``, ``serve`` first
binds the port plainly itself: a port anyone holds is refused (exit 2) before a worker starts.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

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

# How ``serve`` tells its worker processes the --host and --workers they run under.
SERVE_HOST = "LLMSCOPE_SERVE_HOST"
SERVE_WORKERS = "LLMSCOPE_SERVE_WORKERS"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = subparsers.add_parser("serve", help="run the collector")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=5000, help="port to bind (default 5000)")
    serve.add_argument("--config", metavar="YAML", help="gateway config (MLflow AI Gateway YAML)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--otlp-grpc-port",
        type=port_number,
        metavar="PORT",
        help="port of the OTLP/gRPC trace receiver, on --host "
        "(default: $LLMSCOPE_OTLP_GRPC_PORT, else 4317; 0 turns it off)",
    )
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
    if args.otlp_grpc_port is not None:
        os.environ["LLMSCOPE_OTLP_GRPC_PORT"] = str(args.otlp_grpc_port)  # workers inherit it
    settings = settings_from(args)
    names: list[str] | None = None
    if settings.gateway_config:
        from llmscope.collector.gateway.config import ConfigError, load_config

        try:
            loaded = load_config(settings.gateway_config)
        except ConfigError as exc:
            raise UsageError(f"--config: {exc}") from None
        names = [e.name for e in loaded.endpoints] + [r.name for r in loaded.routes]
    prepare_store(settings)
    refuse_open_bind(args.host, args.insecure, settings.database_url)
    if settings.otlp_grpc_port:
        check_grpc_port(args.host, args.port, settings.otlp_grpc_port)
    # Said once the command will start: a refusal stays one line.
    if names is not None:
        print(
            f"llmscope serve: gateway config {settings.gateway_config}: "
            f"{len(names)} endpoint{'s' if len(names) != 1 else ''}: {', '.join(names) or '-'}",
            file=sys.stderr,
            flush=True,
        )
    announce_store(settings, "serve")
    # The worker processes' app factory reads these (grpc_bind_from_env).
    os.environ[SERVE_HOST] = args.host
    os.environ[SERVE_WORKERS] = str(args.workers)
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
            log_config=_log_config(),
            access_log=False,
        )
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
    return 0


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the OTLP/gRPC receiver's lines (where it listens)."""
    from uvicorn.config import LOGGING_CONFIG

    from llmscope.collector.otlp.grpc_receiver import LOGGER

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"][LOGGER] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def check_grpc_port(host: str, http_port: int, port: int) -> None:
    """Refuse (exit 2) a gRPC port that is the HTTP port or that something listens on."""
    if port == http_port:
        raise UsageError(f"--otlp-grpc-port: {port} is the HTTP --port too; pick another")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise UsageError(f"--host {host}: cannot resolve it: {exc}") from None
    for family, kind, proto, _, where in found:
        with socket.socket(family, kind, proto) as probe:
            # As grpc binds: a port left in TIME_WAIT is free, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(where)
            except OSError as exc:
                raise UsageError(
                    f"--otlp-grpc-port: port {port} on {host} is not free ({exc.strerror}); "
                    "pick another, or 0 to turn OTLP/gRPC off"
                ) from None


def grpc_bind_from_env() -> tuple[str, bool]:
    """The gRPC receiver's host, and whether workers share its port, as ``serve`` set them."""
    host = os.environ.get(SERVE_HOST) or "127.0.0.1"
    workers = os.environ.get(SERVE_WORKERS, "1")
    return host, workers.isdigit() and int(workers) > 1


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
