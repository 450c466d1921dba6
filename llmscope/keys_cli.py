"""``llmscope keys create|list|revoke``: manage API keys (the key is printed once, last line)."""

from __future__ import annotations

import argparse

from sqlalchemy.orm import Session, sessionmaker

from llmscope.cli import UsageError, add_database_url, prepare_store, settings_from
from llmscope.db import make_engine, make_sessionmaker, session_scope
from llmscope.keys import SCOPES, KeyError_, create_key, list_keys, revoke_key


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = subparsers.add_parser("keys", help="manage API keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(keys))
    sub.required = True
    create = sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True, help="a name to list and revoke it by")
    create.add_argument("--scope", choices=SCOPES, default="ingest", help="default: ingest")
    add_database_url(create)
    create.set_defaults(handler=_create)
    listing = sub.add_parser("list", help="list keys (never the keys themselves)")
    add_database_url(listing)
    listing.set_defaults(handler=_list)
    revoke = sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    add_database_url(revoke)
    revoke.set_defaults(handler=_revoke)


def _sessions(args: argparse.Namespace) -> sessionmaker[Session]:
    settings = settings_from(args)
    prepare_store(settings)
    return make_sessionmaker(make_engine(settings.database_url))


def _create(args: argparse.Namespace) -> int:
    sessions = _sessions(args)
    try:
        with session_scope(sessions) as session:
            key = create_key(session, name=args.name, scope=args.scope)
    except KeyError_ as exc:
        raise UsageError(str(exc)) from exc
    print(f"created key {args.name!r} with scope {args.scope!r}; it is shown only now:")
    print(key)
    return 0


def _list(args: argparse.Namespace) -> int:
    with session_scope(_sessions(args)) as session:
        keys = list_keys(session)
    if not keys:
        print("no keys: the API is open to anyone who can reach it")
        return 0
    print(f"{'name':<24}{'scope':<8}{'prefix':<10}{'created':<22}{'last used':<22}status")
    for k in keys:
        used = k.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if k.last_used_at else "never"
        status = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(
            f"{k.name:<24}{k.scope:<8}{k.prefix:<10}{k.created_at:%Y-%m-%d %H:%M:%S}   "
            f"{used:<22}{status}"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        with session_scope(_sessions(args)) as session:
            revoke_key(session, args.name)
    except KeyError_ as exc:
        raise UsageError(str(exc)) from exc
    print(f"revoked key {args.name!r}")
    return 0
