"""One record (``/records/<id>``): everything stored about the call, its template and
variables, its clusters in recent runs, its feedback history (the newest event counts) and every
evaluator's verdict with its justification, saying plainly where a verdict contradicts the user."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import data
from llmscope.dashboard.components import (
    badge,
    card,
    fmt_int,
    fmt_num,
    fmt_time,
    fmt_usd,
    page,
    text_block,
    thumb_badge,
)
from llmscope.dashboard.state import ViewState
from llmscope.db.traces import flatten


def render(engine: Engine, state: ViewState, record_id: str) -> html.Div:
    record = data.record_detail(engine, record_id)
    back = dcc.Link("← Clusters", href=state.href("/clusters"), className="back-link")
    if record is None:
        return page(
            "Record not found",
            back,
            card(html.P(["No record with id ", html.Code(record_id), " is stored."])),
        )
    latest = record["feedback"][-1] if record["feedback"] else None
    newest_run = record["clusters"][0]["run_id"] if record["clusters"] else None
    turns = data.turn_flags(engine, newest_run, record_id) if newest_run else {}
    return page(
        "Record",
        back,
        card(_meta(record), title="Call"),
        card(*_conversation(record), title="Prompt and response"),
        card(_template(record), title="Template"),
        *_trace(engine, record, state),
        card(_evaluations(record["evaluations"], latest), title="Evaluations"),
        html.Div(
            [
                card(_feedback(record["feedback"]), title="Feedback history"),
                card(
                    _clusters(
                        record["clusters"],
                        state,
                        data.record_subclusters(
                            engine, record_id, [a["run_id"] for a in record["clusters"]]
                        ),
                    ),
                    title="Clusters",
                ),
            ],
            className="grid-2",
        ),
        subtitle=[
            html.Code(record["id"], id="record-id"),
            " ",
            thumb_badge(latest["thumb"] if latest else None),
            *_turn_badges(turns, state),
        ],
    )


TURN_LABELS = {
    "rephrased": "rephrased: the user asked again in other words",
    "regenerated": "regenerated: the same prompt was sent again",
}


def _turn_badges(turns: dict[str, str], state: ViewState) -> list[Any]:
    """What the newest run found about the next turn of the record's conversation."""
    out: list[Any] = []
    for flag, next_id in turns.items():
        out += [
            " ",
            badge(TURN_LABELS[flag], "bad"),
            " ",
            dcc.Link("next turn", href=state.href(f"/records/{next_id}"), id=f"record-{flag}"),
        ]
    return out


def _meta(r: dict[str, Any]) -> html.Dl:
    tokens = f"{fmt_int(r['input_tokens'])} in · {fmt_int(r['output_tokens'])} out"
    pairs: list[tuple[str, Any]] = [
        ("time", fmt_time(r["timestamp"])),
        ("received", fmt_time(r["received_at"])),
        ("source", r["source"]),
        ("endpoint", r["endpoint"]),
        ("provider", r["provider"]),
        ("model", r["model"]),
        ("status", badge(r["status"], "bad" if r["status"] == "error" else "good")),
        (
            "latency",
            f"{fmt_num(r['latency_ms'], 1)} ms (first token {fmt_num(r['ttft_ms'], 1)} ms)",
        ),
        ("tokens", tokens),
        ("cost", fmt_usd(r["cost_usd"]) if r.get("cost_usd") is not None else "no price"),
        ("user", r["user_id"]),
        ("session", _session_link(r["session_id"])),
        ("trace / span", f"{r['trace_id'] or '–'} / {r['span_id'] or '–'}"),
        ("tags", ", ".join(f"{k}={v}" for k, v in (r["tags"] or {}).items()) or None),
        ("internal", "yes (a call llmscope made itself)" if r["internal"] else None),
    ]
    items: list[Any] = []
    for label, value in pairs:
        if value is None or value == "":
            continue
        items += [html.Dt(label), html.Dd(value)]
    if r["error"]:
        items += [html.Dt("error"), html.Dd(text_block(r["error"], "error-text"))]
    return html.Dl(items, className="meta")


def _session_link(session_id: str | None) -> Any:
    """The session id, linking to the whole conversation."""
    if not session_id:
        return None
    return dcc.Link(session_id, href=f"/sessions/{quote(session_id, safe='')}", id="record-session")


def _conversation(r: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    if r["prompt"] is not None:
        out.append(
            html.Div(
                [html.Div("Prompt", className="field-label"), text_block(r["prompt"], "prompt")],
                id="record-prompt",
            )
        )
    for i, message in enumerate(r["messages"] or []):
        content = message.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, indent=2, ensure_ascii=False)
        out.append(
            html.Div(
                [
                    html.Div(f"{message.get('role', '?')}", className="field-label"),
                    text_block(content, "message"),
                ],
                id=f"record-message-{i}",
            )
        )
    out.append(
        html.Div(
            [html.Div("Response", className="field-label"), text_block(r["response"], "response")],
            id="record-response",
        )
    )
    return out


def _trace(engine: Engine, r: dict[str, Any], state: ViewState) -> list[Any]:
    """The record's trace as a waterfall: every LLM call and agent step, under its parent,
    a bar from its start for its duration; this call's row marked."""
    if not r["trace_id"]:
        return []
    tree = data.record_trace(engine, r["trace_id"])
    if tree is None or tree["nodes"] < 2:
        return []
    total = max(tree["duration_ms"], 0.001)
    rows = []
    for node in flatten(tree["roots"]):
        offset = (node["start"] - tree["start"]).total_seconds() * 1000
        width = max(100 * (node["duration_ms"] or 0.0) / total, 0.5)
        label: Any = node["name"]
        if node.get("record_id") and node["record_id"] != r["id"]:
            label = dcc.Link(node["name"], href=state.href(f"/records/{node['record_id']}"))
        classes = ["waterfall-row", f"kind-{node['kind']}"]
        if node.get("record_id") == r["id"]:
            classes.append("waterfall-this")
        if node["status"] == "error":
            classes.append("waterfall-error")
        rows.append(
            html.Div(
                [
                    html.Div(
                        [badge(node["kind"]), " ", label],
                        className="waterfall-name",
                        style={"paddingLeft": f"{min(node['depth'], 12) * 14}px"},
                        title=node.get("error") or "",
                    ),
                    html.Div(
                        html.Div(
                            className="waterfall-bar",
                            style={
                                "left": f"{100 * offset / total:.2f}%",
                                "width": f"{width:.2f}%",
                            },
                        ),
                        className="waterfall-track",
                    ),
                    html.Div(
                        f"{fmt_num(node['duration_ms'], 1)} ms"
                        + (" · error" if node["status"] == "error" else ""),
                        className="waterfall-ms",
                    ),
                ],
                className=" ".join(classes),
            )
        )
    note = f" (the first {tree['nodes']:,} spans)" if tree["truncated"] else ""
    return [
        card(
            html.Div(rows, id="record-trace", className="waterfall"),
            title=f"Trace: {tree['nodes']:,} spans over {fmt_num(tree['duration_ms'], 1)} ms{note}",
        )
    ]


def _template(r: dict[str, Any]) -> Any:
    if not r["template_name"]:
        return html.P("This call was not rendered from a template.", className="muted")
    return html.Div(
        [
            html.Div([html.Code(f"{r['template_name']}@{r['template_version'] or '-'}")]),
            html.Div("Text", className="field-label"),
            text_block(r["template_text"]),
            html.Div("Variables", className="field-label"),
            text_block(json.dumps(r["template_variables"] or {}, indent=2, ensure_ascii=False)),
        ]
    )


def _feedback(events: list[dict[str, Any]]) -> Any:
    if not events:
        return html.P("No feedback on this call.", className="muted")
    rows = []
    for i, e in enumerate(events):
        value: Any = thumb_badge(e["thumb"]) if e["thumb"] else fmt_num(e["score"], 2)
        counts = badge("counts", "info") if i == len(events) - 1 else None
        rows.append(
            html.Tr(
                [
                    html.Td(fmt_time(e["created_at"])),
                    html.Td([value, " ", counts]),
                    html.Td(", ".join(e["tags"] or [])),
                    html.Td(e["comment"] or ""),
                    html.Td(e["source"]),
                ]
            )
        )
    return html.Table(
        [
            html.Thead(
                html.Tr([html.Th(h) for h in ("time", "value", "tags", "comment", "source")])
            ),
            html.Tbody(rows),
        ],
        className="table",
        id="feedback-history",
    )


def _verdict(e: dict[str, Any]) -> html.Span:
    if e["status"] == "error":
        return badge("error", "warn")
    if e["status"] == "pending":
        return badge("pending", "neutral")
    return badge("pass", "good") if e["passed"] else badge("fail", "bad")


def disagreements(evaluations: list[dict[str, Any]], thumb: str | None) -> list[str]:
    """Plain sentences for every verdict that contradicts the user's latest thumb."""
    if thumb not in ("up", "down"):
        return []
    out = []
    for e in evaluations:
        if e["status"] != "done" or e["passed"] is None:
            continue
        if e["passed"] and thumb == "down":
            out.append(
                f"The evaluator {e['evaluator']} passed this answer, but the user gave it a "
                "thumbs-down: the judge disagrees with the user."
            )
        elif not e["passed"] and thumb == "up":
            out.append(
                f"The evaluator {e['evaluator']} failed this answer, but the user gave it a "
                "thumbs-up: the judge disagrees with the user."
            )
    return out


def _evaluations(evaluations: list[dict[str, Any]], latest: dict[str, Any] | None) -> Any:
    if not evaluations:
        return html.P("No evaluator has looked at this call.", className="muted")
    rows = []
    for e in evaluations:
        tokens = (e["input_tokens"] or 0) + (e["output_tokens"] or 0)
        rows.append(
            html.Tr(
                [
                    html.Td([e["evaluator"], html.Span(f" ({e['version']})", className="muted")]),
                    html.Td(_verdict(e)),
                    html.Td(fmt_num(e["score"], 0) if e["score"] is not None else "–"),
                    html.Td(e["justification"] or e["error"] or ""),
                    html.Td(e["judge_model"] or "built-in check"),
                    html.Td(fmt_int(tokens) if tokens else "–"),
                    html.Td(fmt_time(e["created_at"])),
                ]
            )
        )
    notes = [
        html.P(text, className="notice notice-warn disagreement")
        for text in disagreements(evaluations, latest["thumb"] if latest else None)
    ]
    headers = ("evaluator", "verdict", "score", "justification", "judge", "tokens", "time")
    return html.Div(
        [
            *notes,
            html.Table(
                [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
                className="table",
                id="record-evaluations",
            ),
        ]
    )


def _clusters(assignments: list[dict[str, Any]], state: ViewState, held: dict[str, int]) -> Any:
    """Its cluster in each run, and the most specific sub-cluster holding it (``held``)."""
    if not assignments:
        return html.P("No analysis run has looked at this record yet.", className="muted")
    items = []
    for a in assignments:
        target: Any = "noise (no cluster)"
        if a["cluster_id"] != -1:
            target = dcc.Link(
                f"cluster {a['cluster_id']}",
                href=ViewState(run=a["run_id"]).href(f"/clusters/{a['cluster_id']}"),
            )
        sub = held.get(a["run_id"])
        items.append(
            html.Li(
                [
                    target,
                    *(
                        [
                            html.Span(" › ", className="muted"),
                            dcc.Link(
                                f"sub-cluster {sub}",
                                href=ViewState(run=a["run_id"]).href(f"/clusters/{sub}"),
                                className="record-subcluster",
                            ),
                        ]
                        if sub is not None
                        else []
                    ),
                    html.Span(f" · {a['window']} window of run ", className="muted"),
                    html.Code(a["run_id"]),
                ]
            )
        )
    return html.Ul(items, className="plain-list")
