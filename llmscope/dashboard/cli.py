"""``llmscope dashboard``: serve the Dash dashboard over the store (read only; experiments are
asked of the collector at ``--collector-url``)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit

from llmscope.cli import (
    add_database_url,
    add_insecure,
    announce_store,
    port_number,
    prepare_store,
    refuse_open_bind,
    settings_from,
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dashboard = subparsers.add_parser("dashboard", help="run the dashboard")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    dashboard.add_argument(
        "--port", type=port_number, default=8050, help="port to bind (default 8050)"
    )
    dashboard.add_argument(
        "--collector-url",
        metavar="URL",
        type=http_url,
        help="the collector (llmscope serve --config ...) that runs the cluster page's Try a "
        "fix experiments (default: $LLMSCOPE_COLLECTOR_URL, else http://127.0.0.1:5000)",
    )
    add_database_url(dashboard)
    add_insecure(dashboard)
    dashboard.set_defaults(handler=dashboard_command)


def http_url(text: str) -> str:
    """argparse type: an http(s) URL with a host."""
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL (http://HOST:PORT)")
    return text


def dashboard_command(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from llmscope.dashboard.app import create_app

    if args.collector_url:
        os.environ["LLMSCOPE_COLLECTOR_URL"] = args.collector_url
    settings = settings_from(args)
    announce_store(settings, "dashboard", reader=True)
    # The dashboard only reads, but a brand-new store needs its tables to show its empty state.
    prepare_store(settings)
    refuse_open_bind(args.host, args.insecure, settings.database_url)
    app = create_app(settings)
    # A threaded WSGI server: pages render in parallel while a big map is being drawn.
    server = make_server(args.host, args.port, app.server, threaded=True)
    print(f"llmscope dashboard on http://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
