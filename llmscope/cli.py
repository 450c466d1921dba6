"""What every part's subcommands share: the parser class, errors, ``--database-url``, the store.

The parts (collector, analysis, dashboard) and the base's own commands register subcommands in
their ``cli`` modules with these helpers; :mod:`llmscope.app.cli`, above the parts, assembles
them into the one ``llmscope`` command. Bad arguments exit 2 with one line naming the problem.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from llmscope.config import Settings, store_location


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the store (default: $LLMSCOPE_DATABASE_URL, else embedded SQLite)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with ``--database-url`` applied and checked."""
    url = getattr(args, "database_url", None)
    if url:
        os.environ["LLMSCOPE_DATABASE_URL"] = url  # worker processes inherit it
    try:
        settings = Settings()
    except ValueError as exc:
        first = str(exc).splitlines()
        raise UsageError(" ".join(first[:3])) from exc
    try:
        backend = make_url(settings.database_url).get_backend_name()
    except ArgumentError as exc:
        raise UsageError(f"--database-url: not a database URL: {settings.database_url!r}") from exc
    if backend not in {"sqlite", "postgresql"}:
        raise UsageError(f"--database-url: unsupported database {backend!r} (sqlite, postgresql)")
    return settings


def announce_store(settings: Settings, command: str, *, reader: bool = False) -> None:
    """Say on stderr where the store is (a SQLite file by its absolute path), warn when a
    SQLite path was relative, and for a ``reader`` (a command that only reads records: analyze,
    dashboard, export) refuse a SQLite file whose directory does not exist instead of creating
    it (an empty store there is a typo, not data)."""
    location = store_location(settings.database_url)
    if reader and location.path is not None and not location.path.parent.is_dir():
        raise UsageError(
            f"--database-url: no directory {location.path.parent} for the SQLite store "
            f"{location.path}; check the path (sqlite:/// + a relative path, sqlite://// + an "
            "absolute one)"
        )
    print(f"llmscope {command}: store: {location.describe()}", file=sys.stderr, flush=True)
    warning = location.warning()
    if warning is not None:
        print(f"llmscope {command}: warning: {warning}", file=sys.stderr, flush=True)


def prepare_store(settings: Settings) -> None:
    """Create or migrate the store's tables; a store that does not answer is a one-line error."""
    from llmscope.db import make_engine, upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"cannot open the store {engine.url!r}: {reason}") from exc
    finally:
        engine.dispose()


def refuse_open_bind(host: str, insecure: bool, database_url: str) -> None:
    """Refuse to listen beyond this machine while no API key protects the store."""
    if insecure or _is_loopback(host):
        return
    from llmscope.db import make_engine, make_sessionmaker
    from llmscope.keys import any_keys

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            protected = any_keys(session)
    finally:
        engine.dispose()
    if not protected:
        raise UsageError(
            f"--host {host}: refusing to serve beyond this machine with no API key; "
            "create one with `llmscope keys create --name NAME` or pass --insecure"
        )


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number")
    return port


def add_insecure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address while no API key exists (anyone can read and write)",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CommandError(Exception):
    """The command could not do its work (exit status 1, one line)."""
