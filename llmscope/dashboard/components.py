"""Building blocks every page uses: cards, figures, empty states, filter controls, text blocks.

Record text only ever reaches the page as the children of ``html.Pre``/``html.Code``/plain
elements, which React escapes: a prompt containing ``<script>`` is shown, never run.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any

from dash import dcc, html

from llmscope.dashboard.state import ViewState

FEEDBACK_LABELS = {"down": "thumbs-down", "up": "thumbs-up", "rated": "rated", "unrated": "unrated"}


def fmt_int(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def fmt_usd(value: Any) -> str:
    """US dollars: cents from a dollar up, four decimals below (calls cost fractions of cents)."""
    if value is None:
        return "–"
    amount = float(value)
    return f"${amount:,.2f}" if abs(amount) >= 1 or amount == 0 else f"${amount:.4f}"


def fmt_pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def run_warnings(warnings: list[str]) -> html.Div | None:
    """A run's ``warnings`` (what its data were too few to show), as a notice; None if none."""
    if not warnings:
        return None
    return html.Div(
        [html.Strong("Too little data for some verdicts:"),
         html.Ul([html.Li(w[:1].upper() + w[1:] + ".") for w in warnings])],
        className="notice notice-warn run-warnings",
        id="run-warnings",
    )  # fmt: skip


def fmt_p(value: Any) -> str:
    """A p- or q-value to two significant digits (0.002, 0.41, 1.9e-08)."""
    if value is None:
        return "–"
    return f"{float(value):.2g}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 cluster``, ``2 clusters``, ``1,000 records`` (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


NOT_ENOUGH_RATINGS = "not enough ratings"


def untested(cluster: Any) -> str | None:
    """Why a cluster's thumbs-down hotspot has no figures to show (no rating in the current
    window, or the run did not test it), or None when it has them."""
    if not cluster.feedback.rated:
        return "no rated answer in the current window"
    if cluster.hotspot.p_value is None:
        return "not tested in this run"
    return None


def database_flag(engine: Any) -> str:
    """``--database-url URL`` naming the store this dashboard reads (password hidden), for the
    commands an empty state suggests."""
    url = engine.url.render_as_string(hide_password=True)
    return f"--database-url {shlex.quote(url)}"


def fmt_time(value: datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value.replace("T", " ").replace("Z", " UTC")
    return value.strftime("%Y-%m-%d %H:%M UTC")


def page(title: str, *children: Any, actions: Any = None, subtitle: Any = None) -> html.Div:
    head = [html.Div([html.H1(title, className="page-title")], className="page-heading")]
    if subtitle is not None:
        head[0].children.append(html.Div(subtitle, className="page-subtitle"))
    if actions is not None:
        head.append(html.Div(actions, className="page-actions"))
    return html.Div([html.Div(head, className="page-head"), *children], className="page")


def card(*children: Any, title: str | None = None, className: str = "") -> html.Section:
    body = [html.H2(title, className="card-title")] if title else []
    return html.Section([*body, *children], className=f"card {className}".strip())


def stat(label: str, value: Any, detail: Any = None, tone: str = "") -> html.Div:
    parts = [html.Div(label, className="stat-label"), html.Div(value, className="stat-value")]
    if detail is not None:
        parts.append(html.Div(detail, className="stat-detail"))
    return html.Div(parts, className=f"stat {tone}".strip())


def badge(text: str, tone: str = "neutral") -> html.Span:
    return html.Span(text, className=f"badge badge-{tone}")


def text_block(text: str | None, className: str = "") -> html.Pre:
    """Record text, shown verbatim and escaped (a child string, never HTML)."""
    return html.Pre(text if text else "(empty)", className=f"text-block {className}".strip())


def graph(figure: Any, graph_id: str | None = None, height: int = 260) -> dcc.Graph:
    props: dict[str, Any] = {"id": graph_id} if graph_id else {}
    return dcc.Graph(
        figure=figure,
        config={"displaylogo": False, "responsive": True, "displayModeBar": False},
        style={"height": f"{height}px"},
        **props,
    )


def problems_banner(state: ViewState) -> html.Div | None:
    if not state.problems:
        return None
    return html.Div(
        ["Ignored in the link: ", "; ".join(state.problems), "."], className="notice notice-warn"
    )


def no_records(flag: str) -> html.Section:
    """The first thing a new user sees: how to get a record into the store (``flag``: the
    ``--database-url`` of the store this dashboard reads, see :func:`database_flag`)."""
    curl = (
        "curl -s localhost:5000/api/v1/records -H 'content-type: application/json' \\\n"
        '  -d \'{"endpoint":"chat","model":"gpt-4o-mini","prompt":"How do I reset my password?",'
        '"response":"Settings → Security.","latency_ms":412}\''
    )
    return card(
        html.P(
            "llmscope has not received any LLM calls yet. Start the collector and send one:",
        ),
        html.Pre(f"llmscope serve {flag}", className="command"),
        html.Pre(curl, className="command"),
        html.P(
            [
                "Or point an OpenAI client at ",
                html.Code("http://127.0.0.1:5000/v1"),
                ", or try everything at once with ",
                html.Code("llmscope demo"),
                ". Then reload this page.",
            ]
        ),
        title="No records yet",
        className="empty-state",
    )


def no_run(records: int, flag: str) -> html.Section:
    return card(
        html.P(
            f"The store holds {plural(records, 'record')}, but no analysis has run yet. "
            "An analysis run clusters what people ask, compares the current window with the "
            "baseline, finds thumbs-down hotspots and writes summaries:"
        ),
        html.Pre(f"llmscope analyze {flag}", className="command"),
        html.P("Then reload this page; every run is kept and can be picked here."),
        title="No analysis run yet",
        className="empty-state",
    )


def dropdown(key: str, options: list[str], value: str | None, placeholder: str) -> dcc.Dropdown:
    return dcc.Dropdown(
        id={"type": "view", "key": key},
        options=[{"label": o, "value": o} for o in options],
        value=value,
        placeholder=placeholder,
        clearable=True,
        className="control",
    )


def filter_bar(
    state: ViewState,
    options: dict[str, list[str]],
    *,
    feedback: bool = True,
    extra: list[Any] | None = None,
) -> html.Div:
    """Time range, endpoint, model, template (and feedback) controls, bound to the URL."""
    controls: list[Any] = [
        html.Div(
            [
                html.Label("Time (UTC days)", className="control-label"),
                dcc.DatePickerRange(
                    id={"type": "view-range", "key": "time"},
                    start_date=state.start,
                    end_date=state.end,
                    display_format="YYYY-MM-DD",
                    clearable=True,
                    start_date_placeholder_text="from",
                    end_date_placeholder_text="to",
                ),
            ],
            className="control-group",
        ),
        _labelled("Endpoint", dropdown("endpoint", options["endpoint"], state.endpoint, "all")),
        _labelled("Model", dropdown("model", options["model"], state.model, "all")),
        _labelled("Template", dropdown("template", options["template"], state.template, "all")),
    ]
    if feedback:
        controls.append(
            _labelled(
                "Feedback",
                dcc.Dropdown(
                    id={"type": "view", "key": "feedback"},
                    options=[{"label": v, "value": k} for k, v in FEEDBACK_LABELS.items()],
                    value=state.feedback,
                    placeholder="any",
                    className="control",
                ),
            )
        )
    return html.Div([*controls, *(extra or [])], className="filter-bar")


def _labelled(label: str, control: Any) -> html.Div:
    return html.Div(
        [html.Label(label, className="control-label"), control], className="control-group"
    )


def run_selector(runs: list[Any], current: str | None) -> html.Div:
    """The run picker; with no run in the URL it shows the latest (and leaves the URL alone)."""
    options = [
        {
            "label": f"{r.id} · {fmt_time(r.created_at)}" + (" (latest)" if i == 0 else ""),
            "value": r.id,
        }
        for i, r in enumerate(runs)
    ]
    return html.Div(
        [
            html.Label("Analysis run", className="control-label"),
            dcc.Dropdown(
                id={"type": "view", "key": "run"},
                options=options,
                value=current,
                placeholder=options[0]["label"] if options else "no runs",
                clearable=False,
                className="control control-wide",
            ),
        ],
        className="control-group",
    )


def summary_author(generated_by: str | None) -> str:
    """Who wrote a cluster summary, in words: the LLM (which model) or the extractive fallback."""
    if not generated_by:
        return "no summary stored"
    if generated_by.startswith("llm:"):
        return f"LLM ({generated_by[4:]})"
    if generated_by == "extractive":
        return "extractive (keywords and examples; no summary LLM configured)"
    return generated_by


def thumb_badge(thumb: str | None) -> html.Span:
    if thumb == "down":
        return badge("thumbs-down", "bad")
    if thumb == "up":
        return badge("thumbs-up", "good")
    return badge("unrated", "neutral")
