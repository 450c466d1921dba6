"""A trace: its LLM calls and its agents' steps (tools, retrievers, agents, chains) as a tree."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException

from llmscope.collector.api.deps import SessionDep
from llmscope.db.traces import trace_tree

router = APIRouter(prefix="/api/v1/traces", tags=["traces"])

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@router.get("/{trace_id}")
def get_trace(trace_id: str, session: SessionDep) -> dict[str, Any]:
    """The trace's tree: ``roots``, each node with ``children``, oldest first. An LLM call's
    node has ``kind: llm`` and its ``record_id``; a step's node its ``kind`` (``tool``,
    ``retriever``, ``agent``, ``chain``, ...), ``status``, ``error`` and ``attributes``."""
    wanted = trace_id.lower()
    if not _TRACE_ID.match(wanted):
        raise HTTPException(400, "trace_id: 32 hexadecimal characters (the W3C trace id)")
    tree = trace_tree(session.connection(), wanted)
    if tree is None:
        raise HTTPException(404, f"nothing of trace {wanted} is stored")
    return tree
