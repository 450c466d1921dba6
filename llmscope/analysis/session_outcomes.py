"""How sessions end, per cluster: the share of a cluster's sessions whose last turn was rated
thumbs-down or asked again in other words.

A thumbs-down rate counts answers; a user who gives up counts once, at the end of the session.
This module reads that end, from what a run already has (the records' ``session_id`` and
timestamps, their latest thumbs, the rephrase flags of ``implicit.detect_turns``):

- A **session** is the records of a run that carry the same ``session_id`` (a record without one
  is in no session: the user fallback of the rephrase detection is not a session a user can open).
- Its **last turn** is its newest record of the run (by timestamp; ties by the run's order,
  timestamp then record id). A session counts in the run when its last turn lies in the
  current window: one still going on at the window's end counts with the turn it has so far.
- A session **belongs to the cluster of its last turn**, so each session counts once and the
  clusters' counts add up to the run's sessions. The last turn is where the user stopped: the
  topic they left on is the one to look at, whatever they asked before.
- It **ended with a thumbs-down** when its last turn's latest thumb is down, and **ended with a
  rephrase** when its last turn is a rephrase of the turn before (that turn's ``rephrased``
  flag, whose next turn is the last one): the user's last act was asking the same question
  again, after an answer that did not help. Without prompt embeddings (``LLMSCOPE_EMBED_FIELD``
  other than ``prompt``) no rephrase is detected, and none is counted.
- It **ended badly** with either; ``share`` = ended badly / sessions (None without a session).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from llmscope.analysis.implicit import Turns

__all__ = ["EXAMPLES", "SessionEnds", "SessionOutcomes", "session_ends", "session_outcomes"]

EXAMPLES = 5
"""Session ids kept per cluster as examples of sessions that ended badly (newest first)."""


@dataclass(frozen=True)
class SessionEnds:
    """Per record of a run (in the run's order): is it a counted session's last turn, and how
    did that session end."""

    session_ids: list[str | None]
    last: np.ndarray  # bool: the last turn of its session, in the current window
    thumbs_down: np.ndarray  # bool: ... and its latest thumb is down
    rephrase: np.ndarray  # bool: ... and it asks again, in other words, the turn before
    seconds: np.ndarray  # float: the record's time (newest examples first)

    @property
    def any(self) -> bool:
        """Does any record of the run carry a session id (else no cluster reports sessions)."""
        return any(s is not None for s in self.session_ids)


@dataclass(frozen=True)
class SessionOutcomes:
    """One cluster's sessions (those whose last turn it holds) and how they ended."""

    sessions: int
    ended_thumbs_down: int
    ended_rephrase: int
    ended_badly: int
    share: float | None
    examples: list[str]  # ids of sessions that ended badly, newest last turn first


def _seconds(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment or 0.0)


def session_ends(
    records: Sequence[Mapping[str, Any]],
    is_current: np.ndarray,
    down: Sequence[bool | None],
    turns: Turns | None,
) -> SessionEnds:
    """The last turn of every session of the run and how it ended (module docstring).

    ``down[i]`` is record i's latest thumb (True down, False up, None unrated); ``turns`` the
    run's rephrase flags (None: no prompt embeddings, so no rephrase).
    """
    n = len(records)
    ids: list[str | None] = [str(r["session_id"]) if r.get("session_id") else None for r in records]
    seconds = np.array([_seconds(r.get("timestamp")) for r in records], dtype=float)
    last = np.zeros(n, dtype=bool)
    present = np.array([s is not None for s in ids], dtype=bool)
    if present.any():
        codes = np.full(n, -1, dtype=np.int64)
        codes[present] = np.unique(
            np.array([s for s in ids if s is not None], dtype=object), return_inverse=True
        )[1]
        order = np.lexsort((np.arange(n), seconds, codes))
        # the last of each run of equal codes in that order is its session's newest turn
        ends = order[np.append(codes[order][1:] != codes[order][:-1], True)]
        last[ends[codes[ends] >= 0]] = True
    last &= np.asarray(is_current, dtype=bool)
    thumbs_down = last & np.array([d is True for d in down], dtype=bool)
    rephrase = np.zeros(n, dtype=bool)
    if turns is not None and n:
        asked_again = turns.next_turn[turns.rephrased]  # the turns that rephrase the one before
        rephrase[asked_again] = True
        rephrase &= last
    return SessionEnds(ids, last, thumbs_down, rephrase, seconds)


def session_outcomes(ends: SessionEnds, members: np.ndarray) -> SessionOutcomes:
    """The sessions whose last turn is one of ``members`` (record indices) and how they ended."""
    members = np.asarray(members, dtype=np.int64)
    last = members[ends.last[members]]
    down = ends.thumbs_down[last]
    rephrase = ends.rephrase[last]
    badly = last[down | rephrase]
    newest = badly[np.argsort(-ends.seconds[badly], kind="stable")]
    sessions = int(len(last))
    ended_badly = int(len(badly))
    return SessionOutcomes(
        sessions=sessions,
        ended_thumbs_down=int(down.sum()),
        ended_rephrase=int(rephrase.sum()),
        ended_badly=ended_badly,
        share=ended_badly / sessions if sessions else None,
        examples=[str(ends.session_ids[i]) for i in newest[:EXAMPLES]],
    )
