"""Implicit feedback: the users who ask again in other words, found without a single thumb.

Few answers are rated, but when an answer fails a user, they usually ask the same question
again, reworded. This module finds those turns in the records of a run and tests, per cluster,
whether its answers are rephrased more often than the rest's.

**Detection** (:func:`detect_turns`), vectorised over every record at once:

- A record's *conversation* is its ``session_id``, or its ``user_id`` when it has no session;
  a record with neither is in no conversation and is never counted (:func:`conversation_keys`).
- Within a conversation, turns are ordered by timestamp (ties by the order the run loaded them:
  timestamp, then record id), so the *next turn* of a record is well defined.
- A record is **rephrased** when its next turn comes within ``window_seconds``, asks a different
  text, and that text's embedding has cosine similarity at least ``min_similarity`` with the
  record's: the user asked the same question again, before any other topic (a next turn on
  another topic ends the chance). The embeddings are the ones the run already computed for
  clustering, one per distinct text: nothing is embedded twice.
- A next turn that the run put in the **same cluster** as the record needs only
  ``cluster_ratio * min_similarity``: the clustering has already judged the two texts one
  topic from every text of the run, not from the pair alone, so a looser cosine is enough
  there. Real rewordings are often further apart than the plain threshold (on CLINC150 most
  are), while a topic change rarely lands in the record's own cluster; the ratio recovers the
  former at little cost in the latter. Other next turns (another cluster, or noise) keep the
  plain threshold.
- A record is **regenerated** when its next turn within the window sends the identical text
  again (the "regenerate" button, or a retry): the same signal of a failed answer, but not a
  rephrase, and counted apart.

The defaults (``LLMSCOPE_REPHRASE_MIN_SIMILARITY``, ``LLMSCOPE_REPHRASE_CLUSTER_RATIO``,
``LLMSCOPE_REPHRASE_WINDOW_SECONDS``) and how they were chosen are on the statistics page of the
docs: the similarity and the ratio from Banking77 and CLINC150 paraphrase pairs
(``benchmarks/rephrase_threshold.py``).

**Tests** (:func:`rephrase_tests`): the rephrase rate of a cluster is its rephrased records over
its records in a conversation. It is tested exactly like a thumbs-down hotspot
(``hotspot_tests.py``, with a rephrase in place of a thumbs-down and a record in a conversation
in place of a rated one): *persistent* (the cluster's rate over both windows against every other
cluster's) and *emerging* (its current-window rate against its own baseline rate, and above the
current window's overall rate), with the same minimum support and lift settings. Both tests of
every cluster form the run's *implicit* family, one Benjamini-Hochberg at its share of
``LLMSCOPE_DRIFT_ALPHA`` (``stats.split_alpha``). Under the null (whether an answer is rephrased
is independent of its cluster and window) the family flags anything with probability at most its
level, as the hotspot family does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from llmscope.analysis import stats
from llmscope.analysis.hotspot_tests import (
    DOWN_B,
    DOWN_C,
    RATED_B,
    RATED_C,
    UNTESTED,
    HotspotTests,
    HotspotVerdict,
    KindResult,
    count_rows,
    group_sums,
    hotspot_verdict,
)
from llmscope.config import Settings

__all__ = [
    "KINDS",
    "RephraseVerdict",
    "Turns",
    "conversation_keys",
    "detect_turns",
    "rephrase_tests",
    "turns_of_records",
]

KINDS = ("persistent", "emerging")


@dataclass(frozen=True)
class Turns:
    """Per record (in the order given): what its next turn says about its answer."""

    in_conversation: np.ndarray  # bool: the record has a session or a user
    next_turn: np.ndarray  # int: index of the next turn of its conversation within the window, -1
    similarity: np.ndarray  # float: cosine similarity to that next turn (NaN: none)
    rephrased: np.ndarray  # bool: the next turn asks the same question in other words
    regenerated: np.ndarray  # bool: the next turn sends the identical text again

    @property
    def conversational(self) -> bool:
        """Is any record in a conversation (else the run's implicit family tests nothing)."""
        return bool(self.in_conversation.any())

    def outcomes(self) -> list[bool | None]:
        """Per record: True rephrased, False in a conversation but not rephrased, None in no
        conversation (the shape of a thumb, so the hotspot tests read it unchanged)."""
        return [
            bool(r) if c else None
            for c, r in zip(self.in_conversation.tolist(), self.rephrased.tolist(), strict=True)
        ]


def conversation_keys(records: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Each record's conversation: ``s:<session_id>``, else ``u:<user_id>``, else None."""
    keys: list[str | None] = []
    for r in records:
        if r.get("session_id"):
            keys.append(f"s:{r['session_id']}")
        elif r.get("user_id"):
            keys.append(f"u:{r['user_id']}")
        else:
            keys.append(None)
    return keys


def detect_turns(
    keys: Sequence[str | None],
    seconds: np.ndarray,
    text_index: np.ndarray,
    embeddings: np.ndarray,
    *,
    window_seconds: float,
    min_similarity: float,
    labels: np.ndarray | None = None,
    cluster_ratio: float = 1.0,
) -> Turns:
    """Rephrased and regenerated records (module docstring).

    ``keys[i]`` is record i's conversation (None: none), ``seconds[i]`` its time (any epoch),
    ``text_index[i]`` its row of ``embeddings`` (one row per distinct text, unit length).
    Records given in the run's order (timestamp, then id) keep that order among equal times.
    ``labels[i]`` is record i's cluster (-1: none); a next turn in the record's cluster is a
    rephrase from ``cluster_ratio * min_similarity`` on (never a stricter bar than the plain
    one). Without labels every next turn needs ``min_similarity``.
    """
    n = len(keys)
    codes = np.full(n, -1, dtype=np.int64)
    present = np.array([k is not None for k in keys], dtype=bool)
    if present.any():
        named = np.array([k for k in keys if k is not None], dtype=object)
        codes[present] = np.unique(named, return_inverse=True)[1]
    seconds = np.asarray(seconds, dtype=float)
    text_index = np.asarray(text_index, dtype=np.int64)
    next_turn = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    rephrased = np.zeros(n, dtype=bool)
    regenerated = np.zeros(n, dtype=bool)
    if n >= 2:
        order = np.lexsort((np.arange(n), seconds, codes))
        a, b = order[:-1], order[1:]
        follows = (
            (codes[a] == codes[b]) & (codes[a] >= 0) & (seconds[b] - seconds[a] <= window_seconds)
        )
        a, b = a[follows], b[follows]
        next_turn[a] = b
        same_text = text_index[a] == text_index[b]
        regenerated[a[same_text]] = True
        similarity[a[same_text]] = 1.0
        a, b = a[~same_text], b[~same_text]
        if len(a):
            cosine = np.einsum(
                "ij,ij->i", embeddings[text_index[a]], embeddings[text_index[b]]
            ).astype(float)
            similarity[a] = cosine
            bar = np.full(len(a), float(min_similarity))
            if labels is not None:
                labels = np.asarray(labels, dtype=np.int64)
                together = (labels[a] == labels[b]) & (labels[a] >= 0)
                bar[together] = min(float(min_similarity), cluster_ratio * min_similarity)
            rephrased[a] = cosine >= bar
    return Turns(present, next_turn, similarity, rephrased, regenerated)


def _seconds(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def turns_of_records(
    records: Sequence[Mapping[str, Any]],
    text_index: np.ndarray,
    embeddings: np.ndarray,
    settings: Settings,
    labels: np.ndarray | None = None,
) -> Turns:
    """:func:`detect_turns` on a run's records (``session_id``, ``user_id``, ``timestamp``)
    with the settings' window, similarity and same-cluster ratio (``labels[i]``: record i's
    cluster of the cut)."""
    return detect_turns(
        conversation_keys(records),
        # a record without a time (never one the job loads) is in no order: 0
        np.array([_seconds(r.get("timestamp") or 0.0) for r in records], dtype=float),
        text_index,
        embeddings,
        window_seconds=settings.rephrase_window_seconds,
        min_similarity=settings.rephrase_min_similarity,
        labels=labels,
        cluster_ratio=settings.rephrase_cluster_ratio,
    )


@dataclass(frozen=True)
class RephraseVerdict:
    """One cluster's rephrase rate in each window and its test (persistent or emerging)."""

    current: int  # rephrased records in the current window
    baseline: int
    current_rate: float | None  # rephrased / records in a conversation (None: no such record)
    baseline_rate: float | None
    test: HotspotVerdict  # the two tests, read as a hotspot (rated = in a conversation)

    @property
    def flagged(self) -> bool:
        return self.test.flagged


def _verdict(row: np.ndarray, test: HotspotVerdict) -> RephraseVerdict:
    return RephraseVerdict(
        current=int(row[DOWN_C]),
        baseline=int(row[DOWN_B]),
        current_rate=float(row[DOWN_C] / row[RATED_C]) if row[RATED_C] else None,
        baseline_rate=float(row[DOWN_B] / row[RATED_B]) if row[RATED_B] else None,
        test=test,
    )


def rephrase_tests(
    labels: np.ndarray,
    n_clusters: int,
    is_current: np.ndarray,
    rephrased: Sequence[bool | None],
    settings: Settings,
    *,
    level: float,
) -> list[RephraseVerdict]:
    """Per cluster (``labels[i]``, -1 none), the persistent and emerging tests of its rephrase
    rate; ``rephrased[i]`` as :meth:`Turns.outcomes` gives it. One Benjamini-Hochberg over
    every tested p-value of both kinds at ``level``; flagged with the hotspots' minimum
    support (``LLMSCOPE_HOTSPOT_MIN_RATED`` records in a conversation) and lift."""
    rows = count_rows(np.asarray(is_current, dtype=bool), rephrased)
    totals = rows.sum(axis=0) if len(rows) else np.zeros(6, dtype=np.int64)
    per_cluster = group_sums(np.asarray(labels, dtype=np.int64), rows, n_clusters)
    spots = HotspotTests(totals, settings)
    tested: list[tuple[int, str, float]] = []
    for kind in KINDS:
        for c in range(n_clusters):
            if spots.supported(per_cluster[c], kind):
                tested.append((c, kind, float(spots.p_values(per_cluster[c], kind)[0])))
    q_values = stats.benjamini_hochberg([p for *_, p in tested])
    results: list[dict[str, KindResult]] = [
        dict.fromkeys(KINDS, UNTESTED) for _ in range(n_clusters)
    ]
    for (c, kind, p), q in zip(tested, q_values, strict=True):
        results[c][kind] = spots.result(per_cluster[c], kind, p, q, level)
    prior_a, prior_b = stats.beta_prior(
        per_cluster[:, RATED_C].tolist(), per_cluster[:, DOWN_C].tolist()
    )
    out = []
    for c in range(n_clusters):
        row = per_cluster[c]
        shrunk = float((row[DOWN_C] + prior_a) / (row[RATED_C] + prior_a + prior_b))
        out.append(_verdict(row, hotspot_verdict(row, spots, results[c], shrunk, "cluster")))
    return out
