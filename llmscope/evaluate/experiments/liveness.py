"""Orphaned experiments: a ``running`` row that no process will finish is marked ``failed``.

An experiment is run by one process (a collector for ``POST /api/v1/experiments``, or
``llmscope experiment run``), which stores its owner in the row's ``spec`` when it starts:
the host (with its pid namespace, so two containers sharing a hostname are told apart), the
pid and the process's start time (so a reused pid does not pass for the owner). A row still
``running`` is orphaned when

- its owner ran on this host and that process is gone: known at once; or
- its owner ran on another host (or is unknown) and no answer was stored for it for
  ``LLMSCOPE_EXPERIMENT_STALE_S``: the only sign from here. An owner known to be alive is
  never failed, however slow.

It is then ``failed`` with the reason ("the collector running it stopped"). The collector
checks every running row when it starts, and the status read checks the row it reads, so a
killed collector's experiment ends as failed instead of running forever.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from llmscope.collector.ingest.recorder import pid_alive
from llmscope.db import session_scope
from llmscope.db.models import Experiment, ExperimentItem

log = logging.getLogger("llmscope.experiments")

COLLECTOR = "the collector"
COMMAND = "the llmscope experiment run process"


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux); None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in (...) may hold spaces


def _host() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def me(what: str) -> dict[str, Any]:
    """This process as an experiment's owner; ``what`` names it in a failure's reason."""
    pid = os.getpid()
    return {"what": what, "host": _host(), "pid": pid, "started": _start_time(pid)}


def alive(owner: dict[str, Any] | None) -> bool | None:
    """Whether ``owner`` still runs; None when that cannot be told here (another host)."""
    if not owner or owner.get("host") != _host() or not isinstance(owner.get("pid"), int):
        return None
    pid: int = owner["pid"]
    if owner.get("started") is not None:
        return bool(_start_time(pid) == owner["started"])
    return pid_alive(pid)


def _last_progress(session: Session, row: Experiment) -> datetime:
    newest = session.scalar(
        select(func.max(ExperimentItem.created_at)).where(ExperimentItem.experiment_id == row.id)
    )
    moments = [m for m in (row.created_at, newest) if m is not None]
    return max(m if m.tzinfo else m.replace(tzinfo=UTC) for m in moments)


def settle(session: Session, row: Experiment, stale_after: float, now: datetime) -> bool:
    """Mark ``row`` failed (not committed) if it is orphaned; whether it was."""
    if row.status != "running":
        return False
    owner = (row.spec or {}).get("owner")
    what = (owner or {}).get("what") or "the process"
    running = alive(owner)
    if running is False:
        reason = f"{what} running it stopped"
    elif running is None and now - _last_progress(session, row) > timedelta(seconds=stale_after):
        reason = (
            f"{what} running it stopped: nothing stored for {stale_after:.0f} s "
            "(LLMSCOPE_EXPERIMENT_STALE_S)"
        )
    else:
        return False
    row.status = "failed"
    row.finished_at = now
    row.spec = {**(row.spec or {}), "error": reason}
    return True


def sweep(
    factory: sessionmaker[Session], stale_after: float, now: datetime | None = None
) -> list[str]:
    """Mark every orphaned running experiment failed (a collector does it as it starts);
    their ids. A store that cannot be read is logged and left for the next start."""
    try:
        with session_scope(factory) as session:
            rows = session.scalars(select(Experiment).where(Experiment.status == "running"))
            failed = [
                row.id
                for row in rows.all()
                if settle(session, row, stale_after, now or datetime.now(UTC))
            ]
    except SQLAlchemyError as exc:
        log.warning("orphaned experiments not checked: %s", exc)
        return []
    for experiment_id in failed:
        log.info("experiment failed id=%s reason=its process stopped", experiment_id)
    return failed
