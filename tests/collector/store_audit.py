"""``python -m tests.collector.store_audit REPORT STORE ARGS...``: ``llmscope ARGS`` under an
audit hook watching the SQLite file STORE (and its ``-wal``, ``-shm``, ``-journal``).

SQLite opens its files from C, which raises no ``open`` audit event; Python code that opens one
does (``open``, ``Path.read_text``, ``os.open``, also through ``/proc/self/fd/N`` or a symlink,
as the path is resolved). So each ``open`` line written to REPORT is code other than the engine
touching the store, which releases SQLite's POSIX locks on it when closed. Each
``sqlite3.connect`` to the store is written too, saying whether SQLAlchemy made it.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Any

SUFFIXES = ("", "-wal", "-shm", "-journal")


def install(report: str, store: str) -> None:
    """Append a line to ``report`` for every open of, or connect to, the ``store`` file."""
    watched = {os.path.realpath(store) + suffix for suffix in SUFFIXES}
    out = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    inside = threading.local()  # the hook's own work (linecache) raises events too

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in ("open", "sqlite3.connect") or getattr(inside, "busy", False):
            return
        inside.busy = True
        try:
            target = args[0]
            if not isinstance(target, str | bytes | os.PathLike):
                return  # an fd being wrapped: its open was seen when it was made
            real = os.path.realpath(os.fsdecode(target))
            if real not in watched:
                return
            if event == "open":
                where = " <- ".join(
                    f"{f.filename}:{f.lineno}" for f in reversed(traceback.extract_stack()[-8:-1])
                )
                line = f"open {real} {where}"
            else:
                line = f"connect {'engine' if _from_sqlalchemy() else 'other'} {real}"
            os.write(out, (line + "\n").encode())
        except Exception as exc:  # an audit hook must never break the call it watches
            os.write(out, f"hook-error {type(exc).__name__}: {exc}\n".encode())
        finally:
            inside.busy = False

    sys.addaudithook(hook)


def _from_sqlalchemy() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if f"{os.sep}sqlalchemy{os.sep}" in frame.f_code.co_filename:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def read(report: str) -> tuple[list[str], list[str]]:
    """The ``open`` (and hook error) lines and the ``connect`` lines of ``report``."""
    try:
        with open(report, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return [], []
    return [ln for ln in lines if not ln.startswith("connect ")], [
        ln for ln in lines if ln.startswith("connect ")
    ]


if __name__ == "__main__":
    install(sys.argv[1], sys.argv[2])
    from llmscope.app.cli import main

    sys.exit(main(sys.argv[3:]))
