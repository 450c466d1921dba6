"""The ``llmscope`` command: one console script, one subcommand per job.

This module sits above the parts: each part registers its own subcommands
(``register(subparsers)`` in its ``cli`` module), and this file only assembles them. Bad
arguments exit 2 with one line naming the problem.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.engine import make_url

from llmscope.cli import (
    CommandError,
    Parser,
    UsageError,
    add_database_url,
    prepare_store,
    settings_from,
)

# Modules that add subcommands; each defines register(subparsers) and imports lazily.
COMMAND_MODULES = (
    "llmscope.app.serve",
    "llmscope.evaluate.evaluations.cli",
    "llmscope.evaluate.experiments.cli",
    "llmscope.analysis.cli",
    "llmscope.keys_cli",
    "llmscope.prune_cli",
    "llmscope.dashboard.cli",
    "llmscope.app.demo.cli",
    "llmscope.app.worker",
    "llmscope.app.mcp.cli",
)


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    prepare_store(settings)
    print(f"store is at the newest schema: {make_url(settings.database_url)!r}")
    return 0


def build_parser() -> Parser:
    from llmscope import __version__

    parser = Parser(
        prog="llmscope", description="LLM observability: record, cluster, test, explain."
    )
    parser.add_argument("--version", action="version", version=f"llmscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subparsers.required = True

    db = subparsers.add_parser("db", help="manage the store's schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=Parser)
    db_sub.required = True
    up = db_sub.add_parser("upgrade", help="apply schema migrations (also done on start)")
    add_database_url(up)
    up.set_defaults(handler=_db_upgrade)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"llmscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"llmscope {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
