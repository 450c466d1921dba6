"""The experiments pages: ``/experiments`` lists past experiments with their verdicts, and
``/experiments/<id>`` shows one: the baseline and each variant's figures with the paired test's
verdict, then the original and candidate answers side by side with the evaluators' verdicts.

Experiments are run by ``llmscope experiment run`` (it calls the gateway; the dashboard only
reads), so an empty page says how to start one.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from sqlalchemy import Engine

from llmscope.dashboard.components import (
    badge,
    card,
    database_flag,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_time,
    page,
    plural,
    text_block,
)
from llmscope.dashboard.data.experiments import Answer, Row, experiment_detail, list_experiments
from llmscope.dashboard.state import ViewState
from llmscope.experiment_report import ExperimentReport, Side

TONES = {"better": "good", "worse": "bad"}


def verdict_badge(verdict: str | None) -> html.Span:
    if verdict is None:
        return badge("running", "neutral")
    return badge(verdict, TONES.get(verdict, "neutral"))


def how_to_run(flag: str, cluster_id: int | None = None) -> html.P:
    """The command line way (``flag``: the dashboard's ``--database-url``)."""
    cluster = "ID" if cluster_id is None else str(cluster_id)
    return html.P(
        [
            "Or from the command line: ",
            html.Code(
                f"llmscope experiment run --cluster {cluster} --variant template=NAME@VERSION "
                f"--config gateway.yaml {flag}"
            ),
            " (also template-file=PATH, endpoint=NAME, param.temperature=0.2).",
        ],
        className="muted",
    )


def from_the_browser() -> html.P:
    return html.P(
        [
            "Try a fix from the browser: open a cluster (",
            dcc.Link("Clusters", href="/clusters"),
            "), and in its Try a fix panel pick a template version, an endpoint or paste a "
            "candidate prompt, choose an evaluator and press Run: its answers are judged "
            "against the recorded ones and the verdict is kept here.",
        ]
    )


def render_list(engine: Engine, state: ViewState) -> html.Div:
    experiments = list_experiments(engine)
    flag = database_flag(engine)
    if not experiments:
        return page(
            "Experiments",
            card(
                html.P("No experiment yet."),
                from_the_browser(),
                how_to_run(flag),
                className="empty-state",
            ),
        )
    rows = []
    for e in experiments:
        variants = [
            html.Div(
                [
                    html.Code(v["spec"] or ""),
                    " ",
                    verdict_badge(v["verdict"]),
                    f" p={fmt_p(v['p_value'])}",
                ]
            )
            for v in e["variants"]
        ]
        rows.append(
            html.Tr(
                [
                    html.Td(dcc.Link(e["id"], href=state.href(f"/experiments/{e['id']}"))),
                    html.Td(fmt_time(e["created_at"])),
                    html.Td(
                        dcc.Link(
                            str(e["cluster_id"]),
                            href=ViewState(run=e["run_id"]).href(f"/clusters/{e['cluster_id']}"),
                        )
                    ),
                    html.Td(fmt_int(e["records"])),
                    html.Td(e["status"]),
                    html.Td(variants),
                ]
            )
        )
    headers = ("experiment", "started", "cluster", "records", "status", "variants and verdicts")
    table = html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
        className="table",
        id="experiments-table",
    )
    return page("Experiments", card(table), card(from_the_browser(), how_to_run(flag)))


def _figures(name: str, side: Side, extra: list[Any]) -> html.Tr:
    return html.Tr(
        [
            html.Td(name),
            html.Td(fmt_pct(side.pass_rate)),
            html.Td(fmt_num(side.mean_score, 2)),
            html.Td(fmt_num(side.latency_p50, 0)),
            html.Td(fmt_int(side.tokens)),
            html.Td("–" if side.cost is None else f"${side.cost:.4f}"),
            *[html.Td(x) for x in extra],
        ]
    )


def summary_table(report: ExperimentReport) -> html.Table:
    """Each side's figures, and each variant's paired tests and verdict."""
    rows = [_figures("baseline (production)", report.baseline, ["", "", "", ""])]
    for v in report.variants:
        ci = "–" if v.ci is None else f"[{100 * v.ci[0]:+.1f}, {100 * v.ci[1]:+.1f}] pts"
        needed = (
            f" (about {fmt_int(v.needed_sample)} records would tell)" if v.needed_sample else ""
        )
        rows.append(
            _figures(
                f"{v.name}: {v.spec}",
                v,
                [
                    fmt_p(v.p_value),
                    ci,
                    fmt_p(v.score_p_value),
                    html.Span([verdict_badge(v.verdict), needed]),
                ],
            )
        )
    headers = ("answers", "pass rate", "mean score", "p50 ms", "tokens", "cost",
               "McNemar p", "pass-rate difference", "Wilcoxon p", "verdict")  # fmt: skip
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
        className="table",
        id="experiment-summary",
    )


def _answer(answer: Answer | None) -> html.Td:
    if answer is None:
        return html.Td("(not answered)", className="muted")
    verdicts = [
        html.Div(
            [
                html.B(name),
                ": ",
                badge("pass", "good")
                if v.get("passed")
                else badge("fail", "bad")
                if v.get("passed") is False
                else badge("n/a"),
                f" score {fmt_num(v.get('score'), 0)}" if v.get("score") is not None else "",
                f" · {v['justification']}" if v.get("justification") else "",
            ],
            className="verdict",
        )
        for name, v in sorted(answer.verdicts.items())
    ]
    body = text_block(answer.error or answer.text, "answer")
    return html.Td([body, *verdicts])


def answers_table(state: ViewState, spec: dict[str, Any], rows: list[Row]) -> html.Table:
    """The original and each variant's answers, one record a row, with the verdicts."""
    names = ["baseline", *[str(v.get("name")) for v in spec.get("variants", [])]]
    titles = ["original"] + [f"{v.get('name')}: {v.get('spec')}" for v in spec.get("variants", [])]
    return html.Table(
        [
            html.Thead(html.Tr([html.Th("record"), *[html.Th(t) for t in titles]])),
            html.Tbody(
                [
                    html.Tr(
                        [
                            html.Td(
                                [
                                    dcc.Link(
                                        r.record_id, href=state.href(f"/records/{r.record_id}")
                                    ),
                                    text_block(r.question, "question"),
                                ]
                            ),
                            *[_answer(r.answers.get(n)) for n in names],
                        ]
                    )
                    for r in rows
                ]
            ),
        ],
        className="table side-by-side",
        id="experiment-answers",
    )


def render_detail(engine: Engine, state: ViewState, experiment_id: str) -> html.Div:
    report, spec, rows = experiment_detail(engine, experiment_id)
    back = dcc.Link("← Experiments", href=state.href("/experiments"))
    if spec is None:
        return page(
            "Experiment not found",
            card(html.P(["No experiment ", html.Code(experiment_id), "."])),
            subtitle=back,
        )
    side_by_side = answers_table(state, spec, rows)
    if report is None:
        head = card(
            html.P("This experiment is still running (or was interrupted)."), badge("running")
        )
    else:
        stopped = html.P(report.stopped, className="muted") if report.stopped else None
        head = card(
            html.P(
                f"Cluster {report.cluster_id} of run {report.run_id}: "
                f"{plural(report.records, 'record')}, "
                f"judged by {', '.join(report.evaluators)}."
            ),
            summary_table(report),
            *([stopped] if stopped else []),
            title="Verdict",
        )
    return page(
        f"Experiment {experiment_id}",
        head,
        card(side_by_side, title="Answers side by side"),
        subtitle=back,
    )


def try_a_fix(
    engine: Engine, state: ViewState, cluster_id: int, runner: Any, flag: str
) -> html.Section:
    """The cluster page's "Try a fix" card: ``runner`` (the panel that runs an experiment from
    the browser, ``llmscope.dashboard.tryfix``), how to run one from the command line, and the
    experiments already run on this cluster with their verdicts."""
    return card(
        *([runner] if runner is not None else []),
        how_to_run(flag, cluster_id),
        html.Div(past_experiments(engine, state, cluster_id), id="tryfix-history"),
        title="Try a fix",
    )


def past_experiments(engine: Engine, state: ViewState, cluster_id: int) -> Any:
    """The experiments already run on the cluster with their verdicts (running ones too)."""
    past = list_experiments(engine, cluster_id)
    items = [
        html.Li(
            [
                dcc.Link(e["id"], href=state.href(f"/experiments/{e['id']}")),
                f" ({fmt_time(e['created_at'])}): ",
                *[
                    html.Span([html.Code(v["spec"] or ""), " ", verdict_badge(v["verdict"]), " "])
                    for v in e["variants"]
                ],
            ]
        )
        for e in past[:10]
    ]
    if not items:
        return html.P("No experiment on this cluster yet.", className="muted", id="no-experiments")
    return html.Ul(items, id="cluster-experiments")
