"""Spend budgets: the gateway YAML's ``budgets:``, their spend, alerts at 80% and 100%, and 429s.

::

    budgets:
      - {name: chat-daily, endpoint: chat, period: day, limit_usd: 50}
      - {name: team-web, tag: "team=web", period: month, limit_usd: 400, on_exceed: reject}
      - {name: u-42, user: u-42, period: day, limit_usd: 2, on_exceed: reject}

A budget covers the calls of one endpoint, one user (``user_id``) or one tag (``key=value``)
whose ``timestamp`` falls in the current period (a UTC day, or a UTC calendar month). Spend is
the sum of the stored records' ``cost_usd`` (calls without a price cost nothing here), so every
collector process and every source (gateway, REST, OTLP) counts. Each process re-reads it from
the store every ``LLMSCOPE_BUDGET_REFRESH_S`` seconds and adds what its own gateway priced since.

**Alerts.** When a budget's spend reaches 80% and again at 100% of its limit, an alert of kind
``budget`` is stored (``run_id`` ``budget``, ``stable_key`` ``budget:NAME:PERIOD:80|100``) and
sent to the alert webhooks, once per period whatever the number of collectors: a unique index
on budget alerts' keys lets only one process store (and so send) it.

**Reject** (``on_exceed: reject``, MLflow's REJECT): once the period's spend has reached the
limit, gateway calls the budget covers are answered 429 with ``Retry-After`` (seconds to the next
period) without reaching the provider. The call that crosses the limit still completes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from llmscope.config import Settings, revealed
from llmscope.db.models import Alert, Record
from llmscope.webhooks import deliver, overall

__all__ = ["Budget", "BudgetTracker", "period_bounds"]

log = logging.getLogger("llmscope.collector.costs.budgets")
THRESHOLDS = (80, 100)
ALERT_RUN_ID = "budget"


class Budget(BaseModel):
    """One ``budgets:`` entry (exactly one of ``endpoint``, ``user``, ``tag``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")
    endpoint: str | None = None
    user: str | None = None
    tag: str | None = Field(default=None, pattern=r"^[^=]+=.*$", description="KEY=VALUE")
    period: Literal["day", "month"] = "day"
    limit_usd: float = Field(gt=0)
    on_exceed: Literal["alert", "reject"] = "alert"

    @model_validator(mode="after")
    def _one_scope(self) -> Budget:
        given = [s for s in (self.endpoint, self.user, self.tag) if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of endpoint, user, tag")
        return self

    def covers(
        self, endpoint: str | None, user_id: str | None, tags: Mapping[str, Any] | None
    ) -> bool:
        if self.endpoint is not None:
            return endpoint == self.endpoint
        if self.user is not None:
            return user_id == self.user
        key, _, value = (self.tag or "").partition("=")
        return bool(tags) and tags is not None and tags.get(key) == value

    def condition(self) -> ColumnElement[bool]:
        if self.endpoint is not None:
            return Record.endpoint == self.endpoint
        if self.user is not None:
            return Record.user_id == self.user
        key, _, value = (self.tag or "").partition("=")
        tagged: ColumnElement[bool] = Record.tags[key].as_string() == value
        return tagged


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime, str]:
    """``(start, end, label)`` of the UTC day or month holding ``now``."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
        return start, end, start.strftime("%Y-%m-%d")
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, start.replace(year=year, month=month), start.strftime("%Y-%m")


def spent_usd(session: Session, budget: Budget, start: datetime, end: datetime) -> float:
    """The stored spend of ``budget`` between ``start`` and ``end``."""
    total = session.scalar(
        select(func.coalesce(func.sum(Record.cost_usd), 0.0)).where(
            Record.timestamp >= start, Record.timestamp < end, budget.condition()
        )
    )
    return float(total or 0.0)


def stored_ids(session: Session, ids: list[str]) -> set[str]:
    """Which of ``ids`` the store holds."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(session.scalars(select(Record.id).where(Record.id.in_(chunk))))
    return found


@dataclass
class _State:
    label: str = ""
    stored: float = 0.0  # spend in the store at the last refresh
    # calls this process priced that the last refresh did not find stored yet: id -> cost
    pending: dict[str, float] = field(default_factory=dict)

    @property
    def spent(self) -> float:
        return self.stored + sum(self.pending.values())


class BudgetTracker:
    """Spend per budget for one collector process (see the module docstring)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock
        self.on_refused = on_refused
        self.budgets: tuple[Budget, ...] = ()
        self._state: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_budgets(self, budgets: tuple[Budget, ...] | list[Budget]) -> None:
        """Apply a (re)loaded config's budgets; spend is re-read at the next refresh."""
        with self._lock:
            self.budgets = tuple(budgets)
            self._state = {b.name: self._state.get(b.name, _State()) for b in self.budgets}

    # --- the request path -----------------------------------------------------------------
    def add(self, row: Mapping[str, Any]) -> None:
        """Count a priced call this process recorded, until the next refresh sees it stored."""
        cost = row.get("cost_usd")
        if not self.budgets or not isinstance(cost, int | float) or cost <= 0:
            return
        with self._lock:
            for budget in self.budgets:
                if budget.covers(row.get("endpoint"), row.get("user_id"), row.get("tags")):
                    self._state[budget.name].pending[str(row.get("id"))] = float(cost)

    def exhausted(
        self, endpoint: str | None, user_id: str | None, tags: Mapping[str, Any] | None
    ) -> tuple[Budget, int] | None:
        """A spent ``reject`` budget covering the call, with the seconds until it resets."""
        now = self.clock()
        for budget in self.budgets:
            if budget.on_exceed != "reject" or not budget.covers(endpoint, user_id, tags):
                continue
            start, end, label = period_bounds(budget.period, now)
            state = self._state.get(budget.name)
            if state is not None and state.label in (label, "") and state.spent >= budget.limit_usd:
                if self.on_refused is not None:
                    self.on_refused()
                return budget, max(1, int((end - now).total_seconds()) + 1)
        return None

    def spends(self) -> list[tuple[str, float, float]]:
        """``(name, spent, limit)`` per budget, for the metrics."""
        return [
            (b.name, self._state[b.name].spent if b.name in self._state else 0.0, b.limit_usd)
            for b in self.budgets
        ]

    # --- refresh and alerts ---------------------------------------------------------------
    def refresh(self) -> list[Alert]:
        """Re-read every budget's spend from the store; store and send the alerts now due."""
        now = self.clock()
        raised: list[Alert] = []
        with self.factory() as session:
            for budget in self.budgets:
                start, end, label = period_bounds(budget.period, now)
                with self._lock:
                    state = self._state.setdefault(budget.name, _State())
                    waiting = list(state.pending)
                spent = spent_usd(session, budget, start, end)
                stored = stored_ids(session, waiting)
                with self._lock:
                    state.label, state.stored = label, spent
                    for record_id in stored:
                        state.pending.pop(record_id, None)
                    spent = state.spent
                for threshold in THRESHOLDS:
                    if spent >= budget.limit_usd * threshold / 100:
                        alert = self._claim(session, budget, label, threshold, spent)
                        if alert is not None:
                            raised.append(alert)
        return raised

    def _claim(
        self, session: Session, budget: Budget, label: str, threshold: int, spent: float
    ) -> Alert | None:
        """Store the alert unless some process already did this period; deliver it if we did."""
        key = f"budget:{budget.name}:{label}:{threshold}"
        scope = (
            f"endpoint {budget.endpoint}"
            if budget.endpoint is not None
            else f"user {budget.user}"
            if budget.user is not None
            else f"tag {budget.tag}"
        )
        word = "reached" if threshold == 100 else f"at {threshold}% of"
        action = (
            " New calls it covers are refused (429)."
            if (threshold == 100 and budget.on_exceed == "reject")
            else ""
        )
        message = (
            f"Budget {budget.name} ({scope}, per {budget.period}) {word} its limit: "
            f"${spent:.2f} of ${budget.limit_usd:.2f} spent in {label}.{action}"
        )
        table = Alert.__table__
        assert isinstance(table, Table)
        dialect = session.get_bind().dialect.name
        insert: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        # The unique index on budget alerts' keys makes the first process's insert the only one.
        statement = insert.on_conflict_do_nothing(
            index_elements=["stable_key"], index_where=table.c.kind == "budget"
        ).returning(table.c.id)
        new_id = session.scalar(
            statement,
            {
                "run_id": ALERT_RUN_ID,
                "created_at": self.clock(),
                "kind": "budget",
                "cluster_id": None,
                "stable_key": key,
                "message": message,
                "delivery_status": "logged",
            },
        )
        session.commit()
        if new_id is None:
            return None
        alert = session.get(Alert, new_id)
        assert alert is not None
        results = self._deliver(alert)
        alert.delivery_status, alert.delivery = overall(results), results
        session.commit()
        log.warning(
            "alert kind=budget budget=%s delivery=%s %s",
            budget.name,
            alert.delivery_status,
            message,
        )
        return alert

    def _deliver(self, alert: Alert) -> dict[str, dict[str, Any]]:
        s = self.settings
        link = f"{s.dashboard_url.rstrip('/')}/"
        payloads: dict[str, tuple[str | None, dict[str, Any]]] = {
            "webhook": (
                revealed(s.alert_webhook_url),
                {
                    "kind": "budget",
                    "cluster_id": None,
                    "message": alert.message,
                    "run_id": ALERT_RUN_ID,
                    "dashboard_url": link,
                    "stable_key": alert.stable_key,
                },
            ),
            "slack": (
                revealed(s.alert_slack_webhook_url),
                {"text": f"*llmscope budget*: {alert.message}"},
            ),
        }
        results: dict[str, dict[str, Any]] = {}
        with httpx.Client(timeout=s.alert_delivery_timeout_s) as client:
            for name, (url, payload) in payloads.items():
                if url:
                    results[name] = deliver(
                        client, url, payload, s.alert_delivery_attempts, s.alert_delivery_backoff_s
                    )
        return results

    # --- background refresh ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llmscope-budgets", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while True:
            if self.budgets:
                try:
                    self.refresh()
                except Exception:  # the store may be down: keep the last figures, try again
                    log.warning("budget refresh failed", exc_info=True)
            if self._stop.wait(self.settings.budget_refresh_s):
                return
