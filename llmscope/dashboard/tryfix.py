"""The cluster page's "Try a fix" panel: run an experiment from the browser and read its verdict.

The form (a registered template version or a pasted candidate text, an endpoint or route,
temperature and max_tokens, the evaluators, the sample size) is filled from the collector's
``GET /api/v1/experiments/options`` once the panel is on the page; **Run** posts the experiment to
the collector (:mod:`llmscope.dashboard.collector_client`), a ``dcc.Interval`` polls its status
into a progress bar, and once it is finished the verdict and the answers side by side are read
from the store, as the experiment page reads them. The collector checks the request; whatever it
refuses is shown in its own words. Without a reachable collector the panel says how to enable it.
**Run** is disabled from the click (in the browser, before the post) until the experiment has
finished or could not start, and a click while the panel's experiment still runs starts nothing:
pressing it twice runs one experiment.

The collector is called with the dashboard's own key, so the server checks the person first:
once API keys exist, only a sign-in with ``RUN_SCOPE`` (admin) may start an experiment; anyone
else sees why, and a forged callback starts nothing. The form's numbers are checked here too
(the sample at most ``MAX_SAMPLE`` records, as the API allows), whatever the browser sends.
"""

from __future__ import annotations

import math
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from pydantic import ValidationError
from sqlalchemy import Engine

from llmscope.config import Settings, revealed
from llmscope.dashboard.auth import Login
from llmscope.dashboard.collector_client import CollectorClient, CollectorError
from llmscope.dashboard.components import fmt_int, fmt_p, fmt_pct, plural
from llmscope.dashboard.data.experiments import experiment_detail
from llmscope.dashboard.pages.experiments import answers_table, past_experiments, summary_table
from llmscope.dashboard.state import ViewState
from llmscope.experiment_report import (
    MAX_SAMPLE,
    ExperimentReport,
    ExperimentRequest,
    VariantRequest,
)

POLL_MS = 500
DEFAULT_SAMPLE = 100
RUN_SCOPE = "admin"  # an experiment spends provider tokens with the dashboard's collector key
NOT_ALLOWED = (
    "Try a fix starts paid calls through the collector: it needs a sign-in with an admin key."
)


class FormError(ValueError):
    """A form value the collector must not be asked with; the message names the field."""


def panel(cluster_id: int, run_id: str) -> html.Div:
    """The panel's frame; its form arrives from the collector (see :func:`register`)."""
    return html.Div(
        [
            dcc.Store(id="tryfix-context", data={"cluster_id": cluster_id, "run_id": run_id}),
            dcc.Store(id="tryfix-job"),
            dcc.Interval(id="tryfix-poll", interval=POLL_MS, disabled=True),
            html.Div(html.P("Asking the collector…", className="muted"), id="tryfix-form"),
            html.Div(id="tryfix-message"),
            html.Div(id="tryfix-progress"),
            html.Div(id="tryfix-result"),
        ],
        id="tryfix",
        className="tryfix",
    )


def _field(label: str, control: Any) -> html.Div:
    return html.Div(
        [html.Label(label, className="control-label"), control], className="control-group"
    )


def form(options: dict[str, Any]) -> html.Div:
    """The controls, from what the collector's gateway config offers."""
    templates = [f"{t['name']}@{t['version']}" for t in options.get("templates", [])]
    targets = [
        {"label": f"{e['name']} ({e['kind']})", "value": e["name"]}
        for e in options.get("endpoints", [])
    ]
    evaluators = [e["name"] for e in options.get("evaluators", [])]
    return html.Div(
        [
            html.Div(
                [
                    _field(
                        "Registered template",
                        dcc.Dropdown(
                            id="tryfix-template",
                            options=templates,
                            placeholder="keep the records' prompts",
                            className="control",
                        ),
                    ),
                    _field(
                        "Endpoint or route",
                        dcc.Dropdown(
                            id="tryfix-endpoint",
                            options=targets,
                            placeholder="each record's own",
                            className="control",
                        ),
                    ),
                    _field(
                        "Temperature",
                        dcc.Input(id="tryfix-temperature", type="number", min=0, max=2, step=0.1),
                    ),
                    _field("Max tokens", dcc.Input(id="tryfix-max-tokens", type="number", min=1)),
                    _field(
                        "Records",
                        dcc.Input(
                            id="tryfix-sample",
                            type="number",
                            min=1,
                            max=MAX_SAMPLE,
                            step=1,
                            value=DEFAULT_SAMPLE,
                        ),
                    ),
                ],
                className="filter-bar",
            ),
            _field(
                "…or paste a candidate template ({{variable}} placeholders)",
                dcc.Textarea(id="tryfix-text", className="tryfix-text", rows=4),
            ),
            _field(
                "Evaluators",
                html.Div(
                    [
                        dcc.Checklist(
                            id="tryfix-evaluators",
                            options=evaluators,
                            value=evaluators,
                            inline=True,
                        ),
                        *(
                            []
                            if evaluators
                            else [
                                html.P(
                                    "The collector's gateway config has no evaluators: section; "
                                    "add one (an llm_judge or a check) so answers can be judged.",
                                    className="tryfix-error",
                                    id="tryfix-no-evaluators",
                                )
                            ]
                        ),
                    ]
                ),
            ),
            # Run waits for an evaluator: without one nothing could judge the answers.
            html.Button(
                "Run", id="tryfix-run", className="button", n_clicks=0, disabled=not evaluators
            ),
            html.P(
                "Choose an evaluator: Run waits for one to judge the answers.",
                className="muted small",
                id="tryfix-choose",
                hidden=True,
            ),
        ]
    )


def request_from(
    context: dict[str, Any],
    template: str | None,
    text: str | None,
    endpoint: str | None,
    temperature: float | None,
    max_tokens: int | None,
    evaluators: list[str] | None,
    sample: int | None,
) -> ExperimentRequest:
    """The form's values as the collector's request (the collector checks what they name);
    FormError for a number no form could send."""
    params: dict[str, Any] = {}
    if temperature is not None:
        params["temperature"] = _number(temperature, "Temperature", 0, 2)
    if max_tokens is not None:
        params["max_tokens"] = int(_number(max_tokens, "Max tokens", 1, 10**9, whole=True))
    variant = VariantRequest(
        template=template or None,
        template_text=text if text and text.strip() else None,
        endpoint=endpoint or None,
        params=params,
    )
    # A cleared number box sends "" whatever the annotation says.
    given = DEFAULT_SAMPLE if sample is None or sample == "" else sample  # type: ignore[comparison-overlap]
    context = context if isinstance(context, dict) else {}  # a dcc.Store: the browser's too
    return ExperimentRequest.model_validate(
        {
            "cluster_id": context.get("cluster_id"),
            "run": context.get("run_id"),
            "variants": [variant],
            "evaluators": list(evaluators or []) or None,
            "sample": int(_number(given, "Records", 1, MAX_SAMPLE, whole=True)),
        }
    )


def _number(value: Any, label: str, low: float, high: float, *, whole: bool = False) -> float:
    """``value`` as a number in [low, high] (a whole one when ``whole``), or FormError."""
    span = (
        f"a whole number from {low:.0f} to {high:.0f}"
        if whole
        else f"a number from {low:g} to {high:g}"
    )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormError(f"{label}: must be {span}")
    if not math.isfinite(value) or not low <= value <= high or (whole and value != int(value)):
        raise FormError(f"{label}: must be {span}")
    return value


def progress(done: int, total: int) -> html.Div:
    return html.Div(
        [
            html.Progress(id="tryfix-bar", value=str(done), max=str(max(total, 1))),
            html.Span(
                f" answered and judged {fmt_int(done)} of {fmt_int(total)}", id="tryfix-count"
            ),
        ],
        className="tryfix-progress",
    )


def verdict_sentences(report: ExperimentReport) -> html.Div:
    """Each variant's verdict in words, with the figures behind it."""
    lines = []
    for v in report.variants:
        ci = "" if v.ci is None else f", 95% CI [{100 * v.ci[0]:+.1f}, {100 * v.ci[1]:+.1f}] pts"
        needed = f"; about {fmt_int(v.needed_sample)} records would tell" if v.needed_sample else ""
        lines.append(
            html.P(
                [
                    html.B(
                        f"The candidate is {v.verdict}"
                        if v.verdict in ("better", "worse")
                        else f"The candidate makes {v.verdict}"
                    ),
                    f": pass rate {fmt_pct(report.baseline.pass_rate)} → {fmt_pct(v.pass_rate)}"
                    f" on {plural(v.pairs, 'paired record')}"
                    f" (McNemar p={fmt_p(v.p_value)}{ci}){needed}.",
                ]
            )
        )
    return html.Div(lines, id="tryfix-verdict")


def result(engine: Engine, experiment_id: str) -> html.Div:
    """The finished experiment's verdict, from the store; the answers side by side follow in
    a second step (:func:`answers`): drawing them took the browser most of the time between
    the experiment finishing and its verdict showing."""
    report, spec = experiment_detail(engine, experiment_id, limit=0)[:2]
    state = ViewState()
    link = dcc.Link(f"experiment {experiment_id}", href=state.href(f"/experiments/{experiment_id}"))
    if report is None or spec is None:
        return html.Div(html.P(["No report for ", link, "."], className="muted"))
    stopped = [html.P(report.stopped, className="muted")] if report.stopped else []
    return html.Div(
        [
            verdict_sentences(report),
            summary_table(report),
            *stopped,
            html.P(["Kept as ", link, "."], className="muted"),
            dcc.Store(id="tryfix-answers-for", data=experiment_id),
            html.Div(html.P("Loading the answers…", className="muted"), id="tryfix-answers"),
        ]
    )


def answers(engine: Engine, experiment_id: str) -> Any:
    """The finished experiment's answers side by side, from the store."""
    _, spec, rows = experiment_detail(engine, experiment_id)
    return answers_table(ViewState(), spec, rows) if spec is not None else None


def _fields(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _error(message: str) -> html.P:
    return html.P(message, className="tryfix-error", id="tryfix-error")


def register(app: Dash, engine: Engine, settings: Settings, login: Login) -> None:
    """The panel's callbacks: fill the form, run, poll, show the result."""
    client = CollectorClient(settings.collector_url, revealed(settings.collector_api_key))

    @app.callback(Output("tryfix-form", "children"), Input("tryfix-context", "data"))
    def _load(context: dict[str, Any] | None) -> Any:
        if not login.allows(RUN_SCOPE):
            return _error(NOT_ALLOWED)
        try:
            return form(client.options())
        except CollectorError as exc:
            return html.Div(
                [
                    _error(f"Try a fix is not available: {exc}"),
                    html.P(
                        "It needs the collector with a gateway config (llmscope serve --config "
                        "gateway.yaml) and the dashboard pointed at it: llmscope dashboard "
                        "--collector-url http://HOST:PORT (or LLMSCOPE_COLLECTOR_URL).",
                        className="muted",
                    ),
                ]
            )

    # No evaluator chosen: Run is disabled and says why (the collector would refuse it).
    app.clientside_callback(
        """function (chosen) {
            const none = !(chosen && chosen.length);
            return [none, !none];
        }""",
        Output("tryfix-run", "disabled", allow_duplicate=True),
        Output("tryfix-choose", "hidden"),
        Input("tryfix-evaluators", "value"),
        prevent_initial_call=True,
    )

    # The cluster's experiments as the store holds them, once one starts (running) and again
    # once it has finished (its verdict): never "no experiment yet" under its own progress bar.
    @app.callback(
        Output("tryfix-history", "children"),
        Input("tryfix-job", "data"),
        Input("tryfix-result", "children"),
        State("tryfix-context", "data"),
        prevent_initial_call=True,
    )
    def _history(job: Any, _result: Any, context: dict[str, Any] | None) -> Any:
        if not job or not context:
            return no_update
        state = ViewState(run=str(context["run_id"]))
        return past_experiments(engine, state, int(context["cluster_id"]))

    @app.callback(Output("tryfix-answers", "children"), Input("tryfix-answers-for", "data"))
    def _answers(experiment_id: str | None) -> Any:
        return answers(engine, experiment_id) if experiment_id else no_update

    # Disabled at once, in the browser: a second click cannot reach the server.
    app.clientside_callback(
        "function (clicks) { return clicks ? true : window.dash_clientside.no_update; }",
        Output("tryfix-run", "disabled"),
        Input("tryfix-run", "n_clicks"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("tryfix-job", "data"),
        Output("tryfix-poll", "disabled"),
        Output("tryfix-message", "children"),
        Output("tryfix-progress", "children"),
        Output("tryfix-result", "children"),
        Output("tryfix-run", "disabled", allow_duplicate=True),
        Input("tryfix-run", "n_clicks"),
        Input("tryfix-poll", "n_intervals"),
        State("tryfix-context", "data"),
        State("tryfix-job", "data"),
        State("tryfix-template", "value"),
        State("tryfix-text", "value"),
        State("tryfix-endpoint", "value"),
        State("tryfix-temperature", "value"),
        State("tryfix-max-tokens", "value"),
        State("tryfix-evaluators", "value"),
        State("tryfix-sample", "value"),
        prevent_initial_call=True,
    )
    def _run_or_poll(
        clicks: int | None, _ticks: int | None, context: dict[str, Any], job: Any, *values: Any
    ) -> tuple[Any, ...]:
        """job, poll disabled, message, progress, result, Run disabled (while one runs)."""
        if ctx.triggered_id == "tryfix-run":
            return _start(clicks, context, job, values)
        return _poll(job)

    def _start(
        clicks: int | None, context: Any, job: Any, values: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        if not clicks:
            return (no_update,) * 6
        if not login.allows(RUN_SCOPE):  # checked here: a callback can be posted by anyone
            return None, True, _error(NOT_ALLOWED), None, None, True
        if job and _still_running(str(job)):  # pressed again while it runs: nothing starts
            return no_update, False, no_update, no_update, no_update, True
        try:
            started = client.start(request_from(context, *values))
        except CollectorError as exc:
            return None, True, _error(str(exc)), None, None, False
        except ValidationError as exc:
            return None, True, _error(_fields(exc)), None, None, False
        except FormError as exc:
            return None, True, _error(str(exc)), None, None, False
        return started.id, False, None, progress(started.done, started.total), None, True

    def _still_running(job: str) -> bool:
        try:
            return client.status(job).status == "running"
        except CollectorError:
            return False

    def _poll(job: Any) -> tuple[Any, ...]:
        if not job:
            return no_update, True, no_update, no_update, no_update, no_update
        try:
            now = client.status(str(job))
        except CollectorError as exc:
            return no_update, True, _error(str(exc)), no_update, no_update, False
        if now.status == "running":
            return no_update, False, no_update, progress(now.done, now.total), no_update, True
        if now.status == "failed":
            return no_update, True, _error(f"The experiment failed: {now.error}"), None, None, False
        done = result(engine, now.id)
        return no_update, True, None, progress(now.done, now.total), done, False
