"""The Dash app: one shell (navigation, the URL), a router from path to page, and the few
callbacks that keep every view's state in the URL.

Pages are functions of (engine, view state) that return a layout; a control's change only
rewrites the query string, and the router renders the page for the new URL. So whatever a
person sees can be pasted as a link, and back/forward work.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import plotly
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.fingerprint import build_fingerprint
from flask import Flask, Response, abort, has_request_context, request
from sqlalchemy import Engine

from llmscope.config import Settings, get_settings, revealed
from llmscope.dashboard import charts, export, tryfix
from llmscope.dashboard.auth import Login
from llmscope.dashboard.pages import (
    cluster,
    clusters,
    evaluators,
    experiments,
    overview,
    record,
    session,
)
from llmscope.dashboard.state import ViewState, parse
from llmscope.db import make_engine, make_sessionmaker

_CLUSTER = re.compile(r"^/clusters/(-?\d+)/?$")
_RECORD = re.compile(r"^/records/(.+?)/?$")
_SESSION = re.compile(r"^/sessions/(.+?)/?$")
_EXPERIMENT = re.compile(r"^/experiments/([A-Za-z0-9._-]+)/?$")


# plotly.js (4.8 MB) is what Dash's graphs load on the first chart of a visit, and only then:
# after the page's layout came back. Fetched from the page's head instead, it loads and compiles
# while the server renders the page. Until it has run, ``window.Plotly`` is a promise of it,
# which is what Dash's graph waits for when it finds one there (it loads the file itself only
# when ``window.Plotly`` is unset); the file then sets ``window.Plotly`` to the library.
PLOTLY_JS = "package_data/plotly.min.js"
_PRELOAD = """<script>
(function () {
  var script = document.createElement("script");
  window.Plotly = new Promise(function (resolve, reject) {
    script.onload = function () { resolve(window.Plotly); };
    script.onerror = function (error) { delete window.Plotly; reject(error); };
  });
  script.src = "%s";
  script.async = true;
  document.head.appendChild(script);
})();
</script>"""


def preload_plotly(app: Dash) -> None:
    """Start loading plotly.js from the page's head (see ``_PRELOAD``), from a fingerprinted
    URL the browser keeps for a year."""
    path = os.path.join(os.path.dirname(plotly.__file__), PLOTLY_JS)
    fingerprint = build_fingerprint(PLOTLY_JS, plotly.__version__, int(os.stat(path).st_mtime))
    app.registered_paths["plotly"].add(PLOTLY_JS)
    url = f"{app.config.requests_pathname_prefix}_dash-component-suites/plotly/{fingerprint}"
    app.index_string = app.index_string.replace("{%css%}", "{%css%}\n" + _PRELOAD % url, 1)


# Dash's renderer asks for the layout (and the callbacks) only once its scripts have run; asked
# from the page's head, the server renders the page (which comes with the layout, see ``shell``)
# while the browser loads and compiles them. The renderer's own ``fetch`` of the same URL, mode
# and credentials then takes the preloaded answer instead of asking again.
_PRELOAD_LAYOUT = """<link rel="preload" href="%s_dash-layout" as="fetch" crossorigin="anonymous">
<link rel="preload" href="%s_dash-dependencies" as="fetch" crossorigin="anonymous">"""


def preload_layout(app: Dash) -> None:
    """Ask for the layout and the callbacks from the page's head (see ``_PRELOAD_LAYOUT``)."""
    prefix = app.config.requests_pathname_prefix
    app.index_string = app.index_string.replace(
        "{%css%}", "{%css%}\n" + _PRELOAD_LAYOUT % (prefix, prefix), 1
    )


def render_path(engine: Engine, pathname: str | None, search: str | None) -> Any:
    """The layout of the page at ``pathname`` with the state in ``search``."""
    state = parse(search)
    path = pathname or "/"
    if path in ("/", ""):
        return overview.render(engine, state)
    if path.rstrip("/") == "/clusters":
        return clusters.render(engine, state)
    if path.rstrip("/") == "/evaluators":
        return evaluators.render(engine, state)
    if path.rstrip("/") == "/experiments":
        return experiments.render_list(engine, state)
    if match := _EXPERIMENT.match(path):
        return experiments.render_detail(engine, state, match.group(1))
    if match := _CLUSTER.match(path):
        return cluster.render(engine, state, int(match.group(1)))
    if match := _RECORD.match(path):
        return record.render(engine, state, unquote(match.group(1)))
    if match := _SESSION.match(path):
        return session.render(engine, state, unquote(match.group(1)))
    return html.Div(
        [
            html.H1("Page not found", className="page-title"),
            html.P(
                [
                    "Nothing lives at ",
                    html.Code(path),
                    ". ",
                    dcc.Link("Go to the overview", href="/"),
                ]
            ),
        ],
        className="page",
    )


def nav(pathname: str | None, search: str | None) -> list[Any]:
    """Top navigation; links keep the run being looked at."""
    state = parse(search)
    keep = ViewState(run=state.run)
    path = pathname or "/"
    links = [
        ("Overview", "/", path == "/"),
        ("Clusters", "/clusters", path.startswith("/clusters")),
        ("Evaluators", "/evaluators", path.startswith("/evaluators")),
        ("Experiments", "/experiments", path.startswith("/experiments")),
    ]
    return [
        dcc.Link(label, href=keep.href(href), className="nav-link active" if active else "nav-link")
        for label, href, active in links
    ]


def merge_query(search: str | None, changes: dict[str, Any]) -> str:
    """``search`` with the controls' ``changes`` applied (empty values remove a parameter)."""
    params = parse(search).params()
    for key, value in changes.items():
        name = {"start": "from", "end": "to"}.get(key, key)
        if value is None or value == "" or value == []:
            params.pop(name, None)
        else:
            params[name] = str(value)[:10] if key in ("start", "end") else str(value)
    return parse(urlencode(params)).query()


def triggered_changes(triggered: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The state keys whose controls fired, with their new values."""
    changes: dict[str, Any] = {}
    for prop_id in triggered:
        raw_id, _, prop = prop_id.rpartition(".")
        try:
            key = json.loads(raw_id)["key"]
        except (ValueError, KeyError, TypeError):
            continue
        if prop == "value":
            changes[key] = values.get(key)
        elif prop == "start_date":
            changes["start"] = values.get("start")
        elif prop == "end_date":
            changes["end"] = values.get("end")
    return changes


def create_app(settings: Settings | None = None) -> Dash:
    """The dashboard for the store in ``settings`` (read only)."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    charts.warm_up()  # before the first request, not during it
    app = Dash(
        __name__,
        title="llmscope",
        update_title=None,  # type: ignore[arg-type]  # Dash documents None: keep the title
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    preload_plotly(app)
    preload_layout(app)
    # Once API keys exist, every page and callback needs a signed-in read or admin key.
    login = Login(app.server, make_sessionmaker(engine), revealed(settings.dashboard_secret_key))
    app.layout = lambda: shell(engine, opened_url())

    @app.callback(
        Output("page", "children"),
        Output("nav", "children"),
        Input("url", "pathname"),
        Input("url", "search"),
        prevent_initial_call=True,  # the first page comes with the layout (see ``shell``)
    )
    def _route(pathname: str | None, search: str | None) -> tuple[Any, list[Any]]:
        return render_path(engine, pathname, search), nav(pathname, search)

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input({"type": "view", "key": ALL}, "value"),
        Input({"type": "view-range", "key": ALL}, "start_date"),
        Input({"type": "view-range", "key": ALL}, "end_date"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def _sync(values: list[Any], starts: list[Any], ends: list[Any], search: str | None) -> Any:
        keyed = {i["id"]["key"]: v for i, v in zip(ctx.inputs_list[0], values, strict=True)}
        keyed["start"] = starts[0] if starts else None
        keyed["end"] = ends[0] if ends else None
        changes = triggered_changes(ctx.triggered_prop_ids, keyed)
        if not changes:
            return no_update
        new = merge_query(search, changes)
        return no_update if new == (search or "") else new

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input("cluster-map", "clickData"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def _open_point(click: dict[str, Any] | None, search: str | None) -> Any:
        record_id = point_record(click)
        if record_id is None:
            return no_update, no_update
        return f"/records/{record_id}", ViewState(run=parse(search).run).query()

    server: Flask = app.server  # Dash leaves it untyped

    @server.route("/export/clusters/<int:cluster_id>.csv")
    def _export(cluster_id: int) -> Response:
        found = export.cluster_csv(engine, request.args.get("run"), cluster_id)
        if found is None:
            abort(404, description=f"no cluster {cluster_id} in that run")
        filename, chunks = found
        return Response(
            chunks,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @server.after_request
    def _same_origin_referrer(response: Response) -> Response:
        # The layout request names the page it is for by its Referer (see ``opened_url``);
        # other sites learn nothing of the dashboard's URLs.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @server.route("/health")
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    tryfix.register(app, engine, settings, login)
    app.server.config["LLMSCOPE_ENGINE"] = engine
    return app


def opened_url() -> str | None:
    """The address of the page whose layout is being asked for: the Referer of Dash's
    ``/_dash-layout`` request (the dashboard's pages send it, see ``Referrer-Policy``), else
    None (not that request, or a browser that sends no Referer)."""
    if not has_request_context() or not request.path.endswith("/_dash-layout"):
        return None
    referrer = request.referrer
    if not referrer or urlsplit(referrer).netloc != request.host:
        return None
    return referrer


def shell(engine: Engine, url: str | None) -> html.Div:
    """The app's layout: navigation, the URL and the page. With the ``url`` being opened, the
    page is rendered into it, so the browser draws it from the layout answer, without a second
    round trip for the router callback (and without the callbacks a page's new controls would
    fire as they are inserted). ``url``'s parts are given to ``dcc.Location`` as they stand in
    the browser, which then reports no change on mount; without ``url`` the page is empty and
    the Location's first report renders it through the router."""
    location: dict[str, Any] = {}
    page_children: Any = None
    nav_children: Any = None
    if url is not None:
        parts = urlsplit(url)
        pathname, search = parts.path or "/", f"?{parts.query}" if parts.query else ""
        location = {"pathname": pathname, "search": search, "hash": "", "href": url}
        page_children, nav_children = render_path(engine, pathname, search), nav(pathname, search)
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav", **location),
            html.Header(
                [
                    dcc.Link(
                        [html.Span("◎", className="logo-mark"), " llmscope"],
                        href="/",
                        className="logo",
                    ),
                    html.Nav(nav_children, id="nav", className="nav"),
                ],
                className="topbar",
            ),
            html.Main(
                # Only a new page shows the spinner: a panel's own callbacks (Try a fix polling
                # every half second) would otherwise hide the whole page while they run. (Dash
                # types target_components as an empty TypedDict, hence the ignore.)
                dcc.Loading(
                    html.Div(page_children, id="page"),
                    delay_show=400,
                    type="dot",
                    target_components={"page": "children"},  # type: ignore[arg-type]
                ),
                className="main",
            ),
        ]
    )


def point_record(click: dict[str, Any] | None) -> str | None:
    """The record id behind a clicked map point (its ``customdata``)."""
    points = (click or {}).get("points") or []
    if not points:
        return None
    value = points[0].get("customdata")
    return str(value) if value else None


def create_server_from_env() -> Any:
    """The Flask server of ``create_app()``, for a WSGI server of your choice."""
    return create_app().server
