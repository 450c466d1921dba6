"""Alert history: the alerts analysis runs raised, how their delivery went, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from llmscope.collector.api.deps import SessionDep
from llmscope.db.models import Alert

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

AlertKind = Literal["drift", "new_cluster", "hotspot", "global_drift", "eval_hotspot", "budget"]
DeliveryStatus = Literal["sent", "partial", "failed", "logged", "suppressed"]


class AlertOut(BaseModel):
    id: int
    run_id: str
    created_at: datetime
    kind: str
    cluster_id: int | None
    stable_key: str | None
    message: str
    delivery_status: str
    delivery: dict[str, Any] | None


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    next_cursor: str | None


@router.get("", response_model=AlertPage)
def list_alerts(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    kind: AlertKind | None = None,
    run_id: str | None = None,
    stable_key: Annotated[str | None, Query(description="a cluster's cross-run key")] = None,
    status: Annotated[DeliveryStatus | None, Query(description="delivery status")] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339, inclusive")] = None,
) -> AlertPage:
    """Alerts, newest first, with filters and cursor pagination."""
    query = select(Alert)
    if kind is not None:
        query = query.where(Alert.kind == kind)
    if run_id is not None:
        query = query.where(Alert.run_id == run_id)
    if stable_key is not None:
        query = query.where(Alert.stable_key == stable_key)
    if status is not None:
        query = query.where(Alert.delivery_status == status)
    if since is not None:
        query = query.where(Alert.created_at >= since)
    if cursor is not None:
        if not cursor.isdigit():
            raise HTTPException(400, "cursor: not a cursor this API gave out")
        query = query.where(Alert.id < int(cursor))
    # Ids grow with time, so they order the history and make a stable cursor.
    rows = session.scalars(query.order_by(Alert.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return AlertPage(
        alerts=[AlertOut.model_validate(r, from_attributes=True) for r in page],
        next_cursor=str(page[-1].id) if len(rows) > limit else None,
    )
