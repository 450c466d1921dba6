"""The MCP server: llmscope's reads as tools an engineer's own agent can call.

:func:`build_server` registers the read-only tools of :mod:`llmscope.app.mcp.tools` on a
``FastMCP`` server of the official ``mcp`` SDK, with typed parameters (their JSON schema is what
the agent sees) and descriptions written for the agent. ``llmscope mcp`` runs it on stdio;
:class:`McpEndpoint` serves it over streamable HTTP at ``/mcp`` of ``llmscope serve``, where the
collector's API keys guard it (the ``read`` scope).

Each tool's store reads run in a worker thread, so a slow query never stalls the collector's
event loop. The HTTP transport is stateless with JSON answers (no session to keep, any worker
process can answer); the SDK's session manager can run only once, so every start of the app
(a test may start the same app twice) builds a fresh one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from mcp.server.fastmcp import FastMCP
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field
from sqlalchemy import Engine
from starlette.types import Receive, Scope, Send

from llmscope.app.mcp import tools

__all__ = ["PATH", "McpEndpoint", "build_server"]

PATH = "/mcp"
INSTRUCTIONS = (
    "llmscope records an application's LLM calls with their users' feedback and analyses them: "
    "it clusters what people ask, and flags thumbs-down hotspots, drift, regressions and new "
    "topics. Start with latest_findings (what the newest analysis run flagged, most severe "
    "first), then cluster_evidence for a finding's cluster (its summary, where its thumbs-down "
    "concentrate, example records), get_record for one call in full, and search_records to "
    "test a hypothesis. experiment_report shows how a tried fix did. Everything is read-only."
)
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)

Run = Annotated[
    str,
    Field(
        description='An analysis run id, or "latest" (the default) for the newest run.',
        min_length=1,
        max_length=200,
    ),
]
ClusterId = Annotated[
    int, Field(description="A cluster id of the run (findings and list_clusters name them).")
]

_T = TypeVar("_T")


def _count(most: int, what: str) -> Any:
    """A count parameter's bounds (1 to ``most``) and description."""
    return Field(ge=1, le=most, description=f"{what} (1-{most}).")


async def _off_loop(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)`` in a worker thread (store reads block)."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


@contextmanager
def _root_logging_kept() -> Iterator[None]:
    # FastMCP() calls logging.basicConfig on the root logger; the process's logging is the
    # command's to set (serve's uvicorn, mcp's stderr handler), so whatever it added goes.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def build_server(engine: Engine, *, http: bool = False) -> FastMCP:
    """The MCP server over the store of ``engine``; ``http``: set up for the streamable HTTP
    transport (stateless, JSON answers) rather than stdio."""
    with _root_logging_kept():
        server = FastMCP(
            name="llmscope",
            instructions=INSTRUCTIONS,
            stateless_http=http,
            json_response=http,
            streamable_http_path=PATH,
            # The collector's API keys guard /mcp, as they guard the REST API beside it; the
            # SDK's Host check would refuse every name but localhost behind a proxy.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    @server.tool(annotations=READ_ONLY)
    async def latest_findings(run: Run = "latest") -> dict[str, Any]:
        """What an analysis run flagged, most severe first: thumbs-down hotspots, evaluator
        hotspots, rephrasing hotspots, regressions (latency, answer length, cost, errors),
        new topics and drift. Each finding has its kind, cluster_id (null for the whole
        traffic), the cluster's title, metric (regressions), severity and a one-line message.
        Also the run's windows and the overall drift test."""
        return await _off_loop(tools.latest_findings, engine, run)

    @server.tool(annotations=READ_ONLY)
    async def list_clusters(run: Run = "latest") -> dict[str, Any]:
        """Every cluster of a run, most severe first, each sub-cluster right after its parent:
        id, parent, title, size, calls per window, thumbs-down rate and what flagged it."""
        return await _off_loop(tools.list_clusters, engine, run)

    @server.tool(annotations=READ_ONLY)
    async def cluster_evidence(
        cluster_id: ClusterId,
        run: Run = "latest",
        examples: Annotated[int, _count(tools.EXAMPLES_MAX, "How many example records")] = 10,
    ) -> dict[str, Any]:
        """The evidence on one cluster: its report entry (summary with root cause and
        suggested fix when an LLM wrote it, keywords, size per window, drift, thumbs-down
        counts, hotspot test with p- and q-values, evaluator failures, regressions, latency,
        tokens, templates), its findings, its calls and thumbs-down per template version,
        endpoint and model (per window, with the run's test against the previous template
        version or the route's other destinations where there is one), the feedback tags on
        its thumbs-down answers, and example records: thumbs-down answers first (current
        window, newest first), then the report's examples, then the newest others."""
        return await _off_loop(tools.cluster_evidence, engine, cluster_id, run, examples)

    @server.tool(annotations=READ_ONLY)
    async def get_record(
        record_id: Annotated[str, Field(description="The record's id.", min_length=1)],
    ) -> dict[str, Any]:
        """One recorded LLM call in full, as the REST API shows it: prompt or chat messages,
        response, template (name, version, text, variables), endpoint, model, tokens, latency,
        status and error, tags, trace ids, its feedback history (the last event counts) and
        its evaluations; plus its cluster and window in each of the newest analysis runs."""
        return await _off_loop(tools.get_record, engine, record_id)

    @server.tool(annotations=READ_ONLY)
    async def search_records(
        text: Annotated[
            str | None,
            Field(
                description="Text the question (prompt or chat messages) or the answer "
                "contains, letter case aside.",
                max_length=500,
            ),
        ] = None,
        cluster_id: Annotated[
            int | None,
            Field(description="Only the records of this cluster of the run (-1: unclustered)."),
        ] = None,
        run: Run = "latest",
        template: Annotated[
            str | None,
            Field(description="A prompt template: NAME, or NAME@VERSION.", max_length=300),
        ] = None,
        feedback: Annotated[
            tools.Feedback | None,
            Field(description="The record's newest feedback: up, down, or none (no thumb given)."),
        ] = None,
        since: Annotated[
            datetime | None,
            Field(description="Records at or after this time (RFC 3339; UTC if no offset)."),
        ] = None,
        until: Annotated[
            datetime | None,
            Field(description="Records before this time (RFC 3339; UTC if no offset)."),
        ] = None,
        limit: Annotated[int, _count(tools.SEARCH_MAX, "At most this many records")] = 20,
    ) -> dict[str, Any]:
        """Find records: every filter given must match. Newest first, each with its id, time,
        endpoint, model, template, status, latency, newest thumb and the start of its question
        and answer (get_record has the whole). ``more`` is true when further records match.
        ``run`` only matters with ``cluster_id``."""
        found = await _off_loop(
            tools.search_records,
            engine,
            text=text,
            cluster_id=cluster_id,
            run=run,
            template=template,
            feedback=feedback,
            since=since,
            until=until,
            limit=limit,
        )
        return found

    @server.tool(annotations=READ_ONLY)
    async def list_experiments(
        cluster_id: Annotated[
            int | None, Field(description="Only the experiments on this cluster.")
        ] = None,
    ) -> dict[str, Any]:
        """Experiments (fixes tried on a cluster's records), newest first: id, run, cluster,
        status, and each variant's spec, verdict and p-value."""
        return await _off_loop(tools.experiments, engine, cluster_id)

    @server.tool(annotations=READ_ONLY)
    async def experiment_report(
        experiment_id: Annotated[str, Field(description="The experiment's id.", min_length=1)],
    ) -> dict[str, Any]:
        """A finished experiment's report: the baseline (the original answers) and each
        variant with pass rate, mean judge score, latency, tokens, cost and the paired
        comparison with the baseline (difference, confidence interval, p-value, verdict)."""
        return await _off_loop(tools.experiment_report, engine, experiment_id)

    return server


class McpEndpoint:
    """The MCP server over streamable HTTP, as the ASGI app of the collector's ``/mcp`` path.

    ``start()`` and ``stop()`` belong in the app's lifespan: each start builds a new server and
    session manager (the SDK's runs once), so one app can be started again after a stop.
    """

    PATH = PATH

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._manager: StreamableHTTPSessionManager | None = None
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        server = build_server(self._engine, http=True)
        server.streamable_http_app()  # makes the session manager
        stack = AsyncExitStack()
        await stack.enter_async_context(server.session_manager.run())
        self._manager, self._stack = server.session_manager, stack

    async def stop(self) -> None:
        stack, self._stack, self._manager = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager
        if manager is None:
            body = json.dumps({"detail": "the MCP server is not running"}).encode()
            headers = [(b"content-type", b"application/json"), (b"retry-after", b"5")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await manager.handle_request(scope, receive, send)
