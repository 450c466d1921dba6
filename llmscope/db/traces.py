"""A trace as a tree: its LLM calls (records) and its agents' steps (``spans``), each under the
span it ran in, children in the order they started.

Read by ``GET /api/v1/traces/{trace_id}`` and by the dashboard's record page (its waterfall).
A node whose parent is not in the store (not exported, or a span of another service) is a
root. A record merged into the innermost record of the same call (``merged_into``) stays in the
tree, marked, so the trace reads as the app ran it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from llmscope.db.models import Record, StoredSpan

__all__ = ["MAX_NODES", "flatten", "trace_nodes", "trace_tree"]

MAX_NODES = 2000


def trace_nodes(conn: Connection, trace_id: str) -> list[dict[str, Any]]:
    """Every node of the trace (at most ``MAX_NODES + 1``), flat, oldest first."""
    nodes: list[dict[str, Any]] = []
    calls = conn.execute(
        select(
            Record.id,
            Record.span_id,
            Record.parent_span_id,
            Record.model,
            Record.endpoint,
            Record.timestamp,
            Record.latency_ms,
            Record.status,
            Record.error,
            Record.input_tokens,
            Record.output_tokens,
            Record.merged_into,
        )
        .where(Record.trace_id == trace_id)
        .order_by(Record.timestamp, Record.id)
        .limit(MAX_NODES + 1)
    )
    for r in calls:
        nodes.append(
            {
                "span_id": r.span_id,
                "parent_span_id": r.parent_span_id,
                "kind": "llm",
                "name": r.model or r.endpoint or "LLM call",
                "start": r.timestamp,
                "duration_ms": r.latency_ms,
                "status": r.status,
                "error": r.error,
                "record_id": r.id,
                "model": r.model,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "merged_into": r.merged_into,
            }
        )
    steps = conn.execute(
        select(StoredSpan)
        .where(StoredSpan.trace_id == trace_id)
        .order_by(StoredSpan.start, StoredSpan.span_id)
        .limit(MAX_NODES + 1)
    )
    for s in steps:
        nodes.append(
            {
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "kind": s.kind,
                "name": s.name,
                "start": s.start,
                "duration_ms": s.duration_ms,
                "status": s.status,
                "error": s.error,
                "attributes": s.attributes,
            }
        )
    nodes.sort(key=lambda n: (n["start"], n["span_id"] or ""))
    return nodes


def trace_tree(conn: Connection, trace_id: str) -> dict[str, Any] | None:
    """``{trace_id, start, duration_ms, nodes, truncated, roots}``: each node with its
    ``children`` and ``depth``; None when nothing of the trace is stored."""
    nodes = trace_nodes(conn, trace_id)
    if not nodes:
        return None
    truncated = len(nodes) > MAX_NODES
    nodes = nodes[:MAX_NODES]
    by_span = {n["span_id"]: n for n in nodes if n["span_id"]}
    roots: list[dict[str, Any]] = []
    for node in nodes:
        node["children"] = []
    for node in nodes:
        parent = by_span.get(node["parent_span_id"]) if node["parent_span_id"] else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent["children"].append(node)
    _set_depth(roots, 0)
    start: datetime = min(n["start"] for n in nodes)
    end = max(_end_ms(n, start) for n in nodes)
    return {
        "trace_id": trace_id,
        "start": start,
        "duration_ms": end,
        "nodes": len(nodes),
        "truncated": truncated,
        "roots": roots,
    }


def _end_ms(node: dict[str, Any], start: datetime) -> float:
    offset = (node["start"] - start).total_seconds() * 1000
    return float(offset + (node["duration_ms"] or 0.0))


def _set_depth(nodes: list[dict[str, Any]], depth: int) -> None:
    # iterative: a trace can nest deeper than Python's recursion limit
    stack = [(n, depth) for n in nodes]
    while stack:
        node, level = stack.pop()
        node["depth"] = level
        stack.extend((child, level + 1) for child in node["children"])


def flatten(roots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tree's nodes depth first (a waterfall's rows, each after its parent)."""
    out: list[dict[str, Any]] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node["children"]))
    return out
