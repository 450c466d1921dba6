"""The evaluators page (``/evaluators``): each evaluator's versions, volume, cost and failures,
its fail rate over time, and how it agrees with the users' thumbs in the run shown (from the
report), said in plain words when it does not."""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard import charts, data
from llmscope.dashboard.components import (
    badge,
    card,
    database_flag,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_time,
    graph,
    page,
    plural,
)
from llmscope.dashboard.state import ViewState
from llmscope.report import EvaluatorEntry

# Below this kappa a judge measures something else than what users complain about.
POOR_AGREEMENT = 0.2


def render(engine: Engine, state: ViewState) -> html.Div:
    versions = data.evaluator_versions(engine)
    if not versions:
        return page(
            "Evaluators", _none_stored(data.experiment_judges(engine), database_flag(engine))
        )
    found = data.run_report(engine, state.run)
    entries = found[1].evaluators if found else {}
    return page(
        "Evaluators",
        card(graph(charts.fail_rate_figure(data.fail_rate_by_day(engine)), "fail-rate-chart")),
        card(_agreement(entries, found is not None), title="Agreement with users (latest run)"),
        card(_versions(versions), title="Versions, volume and cost"),
        subtitle=dcc.Link("← Overview", href=state.href("/")),
    )


def _none_stored(judged: dict[str, int], flag: str) -> html.Section:
    """No live verdict is stored: what is true of the evaluators, and how to judge traffic."""
    said: list[Any] = []
    if judged:
        names = ", ".join(f"{name} ({plural(n, 'answer')})" for name, n in sorted(judged.items()))
        said.append(
            html.P(
                [
                    "Evaluators are configured and judge experiments (",
                    dcc.Link("Experiments", href="/experiments"),
                    f": {names}), but no live call has been judged yet.",
                ]
            )
        )
    else:
        said.append(html.P("No evaluations are stored yet."))
    said += [
        html.P(
            [
                "Live calls are judged by ",
                html.Code("llmscope serve"),
                " when an evaluator in the gateway YAML's ",
                html.Code("evaluators:"),
                " section has a ",
                html.Code("sample_rate"),
                " above 0 (with 0 it judges experiments only), or on demand:",
            ]
        ),
        html.Pre(f"llmscope evaluate --config gateway.yaml {flag}", className="command"),
    ]
    return card(*said, title="No live evaluations yet", className="empty-state")


def agreement_sentence(name: str, entry: EvaluatorEntry) -> str:
    """Plain words on whether ``name`` agrees with the users."""
    a = entry.agreement
    if a.n == 0 or a.kappa is None:
        return f"{name}: no answer has both a verdict and a thumb yet, so its agreement is unknown."
    if a.kappa < POOR_AGREEMENT:
        return (
            f"{name} disagrees with users: kappa {a.kappa:.2f} on {plural(a.n, 'answer')} "
            "they rated. Check the judge before trusting its hotspots."
        )
    return f"{name} agrees with users: kappa {a.kappa:.2f} on {plural(a.n, 'answer')} they rated."


def _agreement(entries: dict[str, EvaluatorEntry], has_run: bool) -> Any:
    if not entries:
        reason = "The run shown has no evaluations." if has_run else "No analysis run yet."
        return html.P(reason, className="muted")
    rows = []
    for name, e in sorted(entries.items()):
        a = e.agreement
        ci = f"[{a.kappa_ci[0]:.2f}, {a.kappa_ci[1]:.2f}]" if a.kappa_ci else "–"
        poor = a.kappa is not None and a.kappa < POOR_AGREEMENT
        c = a.confusion
        rows.append(
            html.Tr(
                [
                    html.Td(name),
                    html.Td(
                        f"{fmt_int(e.failed)} of {fmt_int(e.evaluated)} ({fmt_pct(e.fail_rate)})"
                    ),
                    html.Td(fmt_int(a.n)),
                    html.Td([fmt_num(a.kappa, 2), " ", badge("disagrees", "bad") if poor else ""]),
                    html.Td(ci),
                    html.Td(_confusion(c)),
                ]
            )
        )
    sentences = [html.P(agreement_sentence(n, e)) for n, e in sorted(entries.items())]
    headers = ("evaluator", "failed (current window)", "rated by users", "kappa", "95% CI",
               "judge vs thumbs")  # fmt: skip
    return html.Div(
        [
            *sentences,
            html.Table(
                [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
                className="table",
                id="evaluator-agreement",
            ),
        ]
    )


def _confusion(c: dict[str, dict[str, int]]) -> str:
    passed, failed = c.get("pass", {}), c.get("fail", {})
    return (
        f"passed: {passed.get('up', 0)} up, {passed.get('down', 0)} down · "
        f"failed: {failed.get('up', 0)} up, {failed.get('down', 0)} down"
    )


def _versions(versions: list[dict[str, Any]]) -> Any:
    rows = [
        html.Tr(
            [
                html.Td(v["evaluator"]),
                html.Td(html.Code(v["version"])),
                html.Td(fmt_int(v["evaluated"])),
                html.Td(f"{fmt_int(v['failed'])} ({fmt_pct(v['fail_rate'])})"),
                html.Td(fmt_int(v["errors"])),
                html.Td(fmt_int(v["pending"])),
                html.Td(v["judge_model"] or "built-in check"),
                html.Td(fmt_int(v["tokens"])),
                html.Td(f"{fmt_time(v['first'])} → {fmt_time(v['last'])}"),
            ]
        )
        for v in versions
    ]
    headers = ("evaluator", "version", "verdicts", "failed", "errors", "pending", "judge",
               "judge tokens", "time")  # fmt: skip
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
        className="table",
        id="evaluator-versions",
    )
