"""``llmscope mcp``: the MCP server on stdio, for an agent that starts it as a subprocess
(Claude Desktop, an IDE, any MCP client).

Standard output carries the protocol and nothing else: the store's location and every log line
go to standard error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sqlalchemy.engine import make_url

from llmscope.cli import add_database_url, prepare_store, settings_from

log = logging.getLogger("llmscope.mcp")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    mcp = subparsers.add_parser(
        "mcp", help="run the MCP server on stdio (read-only tools for an agent)"
    )
    add_database_url(mcp)
    mcp.set_defaults(handler=mcp_command)


def mcp_command(args: argparse.Namespace) -> int:
    from llmscope.app.mcp.server import build_server
    from llmscope.db import make_engine

    settings = settings_from(args)
    # Warnings of every library, and llmscope's own news; not the SDK's line per request.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("llmscope").setLevel(logging.INFO)
    # The tools only read, but a brand-new store needs its tables to answer "no run yet".
    prepare_store(settings)
    engine = make_engine(settings.database_url)
    log.info("llmscope MCP server on stdio, store %r", make_url(settings.database_url))
    try:
        build_server(engine).run("stdio")
    finally:
        engine.dispose()
    return 0
