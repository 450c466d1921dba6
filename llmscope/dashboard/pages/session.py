"""One conversation (``/sessions/<id>``): every turn in the order it was asked, with its cluster
in the run being looked at, what the user said of the answer and the evaluators' verdicts;
each turn links to its record."""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import data
from llmscope.dashboard.components import badge, card, fmt_time, page, plural, thumb_badge
from llmscope.dashboard.data.common import snippet
from llmscope.dashboard.state import ViewState


def render(engine: Engine, state: ViewState, session_id: str) -> html.Div:
    found = data.session_turns(engine, session_id, state.run)
    back = dcc.Link("← Clusters", href=state.href("/clusters"), className="back-link")
    if found is None:
        return page(
            "Session not found",
            back,
            card(html.P(["No record carries the session id ", html.Code(session_id), "."])),
        )
    turns = found.turns
    down = sum(t.thumb == "down" for t in turns)
    shown = plural(len(turns), "turn")
    if found.truncated:
        shown = f"the first {shown} (more are stored)"
    return page(
        "Session",
        back,
        card(
            html.Ol(
                [_turn(i, t, state, found.run_id) for i, t in enumerate(turns)],
                className="session-turns",
                id="session-turns",
            ),
            title=f"Turns, oldest first: {shown}",
        ),
        subtitle=[
            html.Code(session_id, id="session-id"),
            f" · {fmt_time(turns[0].timestamp)} → {fmt_time(turns[-1].timestamp)}",
            f" · {plural(down, 'thumbs-down', 'thumbs-down')}",
        ],
    )


def _turn(i: int, t: data.Turn, state: ViewState, run_id: str | None) -> html.Li:
    cluster: Any = html.Span("not in the run", className="muted")
    if t.cluster_id == -1:
        cluster = html.Span("noise (no cluster)", className="muted")
    elif t.cluster_id is not None:
        cluster = dcc.Link(
            f"cluster {t.cluster_id}",
            href=ViewState(run=run_id or state.run).href(f"/clusters/{t.cluster_id}"),
        )
    said: list[Any] = [thumb_badge(t.thumb)]
    if t.tags:
        said.append(html.Span(" " + ", ".join(t.tags), className="tags"))
    if t.comment:
        said.append(html.Q(snippet(t.comment, 200), className="comment"))
    verdicts = [badge(f"{name} failed", "bad") for name in t.failed]
    verdicts += [badge(f"{name} passed", "good") for name in t.passed]
    status = [badge("error", "bad")] if t.status == "error" else []
    return html.Li(
        [
            html.Div(
                [
                    dcc.Link(fmt_time(t.timestamp), href=state.href(f"/records/{t.record_id}")),
                    " · ",
                    cluster,
                    *([" · ", t.endpoint] if t.endpoint else []),
                    " ",
                    *status,
                ],
                className="turn-head",
            ),
            html.Div(snippet(t.asked, 300), className="turn-asked"),
            html.Div(snippet(t.response, 300) or "(no answer)", className="turn-answer muted"),
            html.Div([*said, " ", *verdicts], className="turn-said"),
        ],
        id=f"turn-{i}",
        className=f"turn turn-{t.thumb or 'unrated'}",
    )
