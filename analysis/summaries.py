"""Cluster summaries: an LLM explains each problem cluster; otherwise an honest extractive one.

For one stored run, :func:`summarize_run` picks the clusters worth an LLM's time (flagged for
drift or as a thumbs-down hotspot first, then the largest few, at most
``Settings.summary_max_clusters``), builds the prompt of :mod:`llmscope.analysis.prompts` from
the run's numbers and the store's records, and asks the OpenAI-compatible endpoint of
``Settings.summary_llm_url`` / ``summary_llm_model`` for a JSON object (title, summary,
root_cause, suggested_fix). Calls carry ``X-LLMScope-Internal: true`` so the gateway records
them as internal and the analysis never clusters them. A bad answer is retried once; a second
failure, no LLM configured, or a spent token budget gives an extractive summary (keywords,
representative questions, the numbers) marked ``generated_by: "extractive"``. LLM answers are
cached in ``summaries`` by a hash of the rendered prompt, so an unchanged cluster costs nothing.
Every cluster of the run gets a summary in ``run_clusters.summary`` and in the run report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmscope.analysis.prompts import (
    SUMMARY_PROMPT_VERSION,
    ClusterBrief,
    Example,
    render_summary_prompt,
)
from llmscope.config import Settings
from llmscope.db.models import AnalysisRun, Feedback, Record, RunAssignment, RunCluster, Summary

__all__ = ["summarize_run", "parse_summary", "extractive_summary", "SummaryError"]

log = logging.getLogger("llmscope.analysis.summaries")

SUMMARY_KEYS = ("title", "summary", "root_cause", "suggested_fix")
INTERNAL_HEADER = {"X-LLMScope-Internal": "true"}
EXAMPLES_SHOWN = 5
THUMBS_DOWN_SHOWN = 5
BASELINE_SHOWN = 3
TEXT_CHARS = 400  # per prompt or answer shown to the LLM: enough to see the problem
FIELD_CHARS = {"title": 120, "summary": 2000, "root_cause": 1500, "suggested_fix": 1500}


class SummaryError(ValueError):
    """The LLM's answer is not a usable summary."""


def parse_summary(content: str | None) -> dict[str, str]:
    """The four summary fields from an LLM answer, or :class:`SummaryError` saying why not."""
    if not content or not content.strip():
        raise SummaryError("empty answer")
    text = content.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # Models often wrap JSON in a code fence or a sentence: take the outermost object.
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise SummaryError("answer is not JSON") from None
        try:
            value = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise SummaryError(f"answer is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise SummaryError("answer is JSON but not an object")
    missing = [k for k in SUMMARY_KEYS if not isinstance(value.get(k), str) or not value[k].strip()]
    if missing:
        raise SummaryError(f"answer lacks non-empty string keys {missing}")
    return {k: value[k].strip()[: FIELD_CHARS[k]] for k in SUMMARY_KEYS}


# --- what the store says about a cluster ---------------------------------------------------


def _short(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _question(record: Record) -> str:
    """What the user asked: the prompt, else the last user message of a chat."""
    if record.prompt:
        return record.prompt
    for message in reversed(record.messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # OpenAI content parts
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
    return ""


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if _is_num(value) else "n/a"


def _num(value: Any, digits: int = 0) -> str:
    return f"{float(value):.{digits}f}" if _is_num(value) else "n/a"


@dataclass
class _Feedback:
    thumb: str | None
    tags: list[str]
    comment: str


def _latest_feedback(session: Session, run_id: str) -> dict[str, tuple[int, _Feedback]]:
    """record id -> (cluster id, latest feedback) for the run's rated records."""
    rows = session.execute(
        select(
            RunAssignment.cluster_id,
            Feedback.record_id,
            Feedback.thumb,
            Feedback.tags,
            Feedback.comment,
        )
        .join(Feedback, Feedback.record_id == RunAssignment.record_id)
        .where(RunAssignment.run_id == run_id)
        .order_by(Feedback.created_at, Feedback.id)
    ).all()
    latest: dict[str, tuple[int, _Feedback]] = {}
    for cluster_id, record_id, thumb, tags, comment in rows:
        latest[record_id] = (cluster_id, _Feedback(thumb, list(tags or []), comment or ""))
    return latest


def _baseline_ids(session: Session, run_id: str, cluster_id: int) -> list[str]:
    """The cluster's own baseline records, or (for a new cluster) any baseline records."""
    query = select(RunAssignment.record_id).where(
        RunAssignment.run_id == run_id, RunAssignment.window == "baseline"
    )
    # Record ids are mostly random UUIDs, so ordering by them is a cheap repeatable sample.
    own = session.scalars(
        query.where(RunAssignment.cluster_id == cluster_id)
        .order_by(RunAssignment.record_id)
        .limit(BASELINE_SHOWN)
    ).all()
    if own:
        return list(own)
    return list(session.scalars(query.order_by(RunAssignment.record_id).limit(BASELINE_SHOWN)))


def _cluster_member_ids(session: Session, run_id: str, cluster_id: int, limit: int) -> list[str]:
    return list(
        session.scalars(
            select(RunAssignment.record_id)
            .where(RunAssignment.run_id == run_id, RunAssignment.cluster_id == cluster_id)
            .order_by(RunAssignment.window.desc(), RunAssignment.record_id)
            .limit(limit)
        )
    )


def _records(session: Session, ids: list[str]) -> dict[str, Record]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(Record).where(Record.id.in_(set(ids))))}


def _brief(
    cluster: dict[str, Any],
    examples: list[Record],
    down: list[tuple[Record, _Feedback]],
    baseline: list[Record],
) -> ClusterBrief:
    drift = cluster.get("drift") or {}
    feedback = cluster.get("feedback") or {}
    hotspot = cluster.get("hotspot") or {}
    latency = cluster.get("latency_ms") or {}
    templates = cluster.get("templates") or {}
    return ClusterBrief(
        cluster_id=int(cluster["id"]),
        size=int(cluster.get("size") or 0),
        current_count=int(cluster.get("current_count") or 0),
        baseline_count=int(cluster.get("baseline_count") or 0),
        keywords=[str(k) for k in (cluster.get("keywords") or [])][:10],
        baseline_share=_pct(cluster.get("baseline_share")),
        current_share=_pct(cluster.get("current_share")),
        drift_kind=str(drift.get("kind") or "n/a"),
        drift_flagged=bool(drift.get("flagged")),
        down_rate=_pct(feedback.get("down_rate")),
        rated=int(feedback.get("rated") or 0),
        lift=f"{_num(hotspot.get('lift'), 2)}x" if _is_num(hotspot.get("lift")) else "n/a",
        hotspot_flagged=bool(hotspot.get("flagged")),
        latency_p50=_num(latency.get("p50")),
        latency_p95=_num(latency.get("p95")),
        templates=", ".join(f"{k} ({v})" for k, v in sorted(templates.items())) or "none",
        examples=[Example(_short(_question(r)), _short(r.response)) for r in examples],
        thumbs_down=[
            Example(_short(_question(r)), _short(r.response), tuple(f.tags), _short(f.comment))
            for r, f in down
        ],
        baseline=[Example(_short(_question(r))) for r in baseline],
    )


# --- extractive -----------------------------------------------------------------------------


def extractive_summary(brief: ClusterBrief, down_tags: Counter[str], reason: str) -> dict[str, Any]:
    """A summary made only of what the data says; ``generated_by`` is ``extractive``."""
    title = " / ".join(brief.keywords[:3]) or f"Cluster {brief.cluster_id}"
    questions = "; ".join(f'"{e.prompt}"' for e in brief.examples[:3] if e.prompt)
    parts = [
        f"{brief.size} requests ({brief.current_count} current, {brief.baseline_count} baseline).",
        f"Keywords: {', '.join(brief.keywords) or 'none'}.",
    ]
    if questions:
        parts.append(f"Representative questions: {questions}.")
    parts.append(
        f"Share of traffic {brief.baseline_share} -> {brief.current_share} "
        f"(drift: {brief.drift_kind}{', flagged' if brief.drift_flagged else ''})."
    )
    parts.append(
        f"Thumbs-down rate {brief.down_rate} of {brief.rated} rated"
        f"{' (flagged hotspot)' if brief.hotspot_flagged else ''}; "
        f"latency p50 {brief.latency_p50} ms, p95 {brief.latency_p95} ms."
    )
    tags = ", ".join(f"{tag} ({n})" for tag, n in down_tags.most_common(5))
    return {
        "title": title,
        "text": " ".join(parts),
        # An extractive summary reports evidence, never a diagnosis.
        "root_cause": f"Thumbs-down feedback tags: {tags}." if tags else None,
        "suggested_fix": None,
        "generated_by": "extractive",
        "reason": reason,
    }


# --- the LLM --------------------------------------------------------------------------------


class _LLMWriter:
    """Asks the configured LLM for summaries within the run's token budget."""

    def __init__(self, settings: Settings) -> None:
        self.model = str(settings.summary_llm_model)
        self.max_output = settings.summary_max_output_tokens
        self.budget = settings.summary_max_tokens_per_run
        self.used = 0
        self.broken: str | None = None  # set once the endpoint itself fails: stop calling it
        self.client = openai.OpenAI(
            base_url=str(settings.summary_llm_url),
            # The gateway needs no key unless API keys are on; the client insists on one.
            api_key=settings.summary_llm_api_key or "llmscope-no-key",
            timeout=settings.summary_timeout_s,
            max_retries=0,  # the retry policy is ours: once, then extractive
            default_headers=INTERNAL_HEADER,
        )

    def close(self) -> None:
        self.client.close()

    def _estimate(self, messages: list[dict[str, str]]) -> int:
        # ~4 characters per token for English: a bound good enough for a budget.
        return sum(len(m["content"]) for m in messages) // 4 + self.max_output

    def _call(self, messages: list[dict[str, str]]) -> str | None:
        estimate = self._estimate(messages)
        response = self.client.chat.completions.create(
            model=self.model,
            messages=cast(list[ChatCompletionMessageParam], messages),
            max_tokens=self.max_output,
            temperature=0,
            response_format={"type": "json_object"},
        )
        usage = getattr(response, "usage", None)
        self.used += int(getattr(usage, "total_tokens", 0) or 0) or estimate
        if not response.choices:
            return None
        return response.choices[0].message.content

    def write(self, messages: list[dict[str, str]]) -> tuple[dict[str, str] | None, str]:
        """(the parsed summary, "") or (None, why not) after at most two attempts."""
        if self.broken:
            return None, f"LLM unavailable earlier in this run: {self.broken}"
        conversation = list(messages)
        reason = ""
        transport_failures = 0
        for _attempt in range(2):
            if self.used + self._estimate(conversation) > self.budget:
                return None, reason or "summary token budget of the run is spent"
            try:
                content = self._call(conversation)
            except (openai.APIError, OSError) as exc:
                transport_failures += 1
                reason = f"LLM call failed: {type(exc).__name__}: {_short(str(exc))}"
                log.warning("summary call failed model=%s error=%s", self.model, reason)
                continue
            try:
                return parse_summary(content), ""
            except SummaryError as exc:
                reason = f"LLM answer rejected: {exc}"
                log.warning("summary answer rejected model=%s reason=%s", self.model, exc)
                # Show the model its answer and what was wrong with it, once.
                conversation = [
                    *messages,
                    {"role": "assistant", "content": _short(content)},
                    {
                        "role": "user",
                        "content": f"That answer was not usable ({exc}). Reply with only a "
                        "JSON object with the string keys title, summary, root_cause, "
                        "suggested_fix.",
                    },
                ]
        if transport_failures == 2:
            self.broken = reason
        return None, reason


def _cache_key(model: str, messages: list[dict[str, str]]) -> str:
    payload = json.dumps(
        {"prompt_version": SUMMARY_PROMPT_VERSION, "model": model, "messages": messages},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _choose(clusters: list[dict[str, Any]], settings: Settings) -> list[int]:
    """Cluster ids for the LLM: flagged first (hotspots, then drift), then the largest."""

    def flagged(c: dict[str, Any], key: str) -> bool:
        return bool((c.get(key) or {}).get("flagged"))

    def size(c: dict[str, Any]) -> int:
        return int(c.get("size") or 0)

    hot = sorted((c for c in clusters if flagged(c, "hotspot")), key=size, reverse=True)
    drift = sorted(
        (c for c in clusters if flagged(c, "drift") and not flagged(c, "hotspot")),
        key=size,
        reverse=True,
    )
    chosen = [int(c["id"]) for c in hot + drift]
    largest = [int(c["id"]) for c in sorted(clusters, key=size, reverse=True)]
    chosen += [cid for cid in largest[: settings.summary_largest_clusters] if cid not in chosen]
    return chosen[: settings.summary_max_clusters]


def summarize_run(session: Session, run_id: str, settings: Settings) -> dict[int, dict[str, Any]]:
    """Write a summary for every cluster of ``run_id``; returns them by cluster id.

    Never raises because of the LLM. The caller commits.
    """
    run = session.get(AnalysisRun, run_id)
    if run is None:
        raise LookupError(f"no analysis run {run_id!r}")
    report = copy.deepcopy(run.report or {})
    clusters = [c for c in report.get("clusters") or [] if int(c.get("id", -1)) >= 0]
    rows = {
        c.cluster_id: c
        for c in session.scalars(select(RunCluster).where(RunCluster.run_id == run_id))
    }
    chosen = set(_choose(clusters, settings))
    feedback = _latest_feedback(session, run_id)
    down_by_cluster: dict[int, list[tuple[str, _Feedback]]] = {}
    for record_id, (cluster_id, event) in feedback.items():
        if event.thumb == "down":
            down_by_cluster.setdefault(cluster_id, []).append((record_id, event))

    writer: _LLMWriter | None = None
    if settings.summary_llm_url and settings.summary_llm_model and settings.summary_max_clusters:
        writer = _LLMWriter(settings)
    results: dict[int, dict[str, Any]] = {}
    try:
        for cluster in clusters:
            cid = int(cluster["id"])
            use_llm = writer is not None and cid in chosen
            example_ids = [str(i) for i in (cluster.get("examples") or [])][:EXAMPLES_SHOWN]
            if not example_ids:
                example_ids = _cluster_member_ids(session, run_id, cid, EXAMPLES_SHOWN)
            downs = down_by_cluster.get(cid, [])
            # Commented thumbs-down say the most; ids break ties so the prompt is repeatable.
            downs.sort(key=lambda item: (not item[1].comment, item[0]))
            down_ids = [rid for rid, _ in downs[:THUMBS_DOWN_SHOWN]] if use_llm else []
            base_ids = _baseline_ids(session, run_id, cid) if use_llm else []
            records = _records(session, example_ids + down_ids + base_ids)
            brief = _brief(
                cluster,
                [records[i] for i in example_ids if i in records],
                [(records[rid], f) for rid, f in downs[:THUMBS_DOWN_SHOWN] if rid in records],
                [records[i] for i in base_ids if i in records],
            )
            summary: dict[str, Any] | None = None
            reason = "not among the clusters sent to the LLM"
            if not (settings.summary_llm_url and settings.summary_llm_model):
                reason = "no summary LLM configured"
            elif writer is not None and use_llm:
                summary, reason = _llm_summary(session, writer, brief)
            if summary is None:
                tags = Counter(tag for _, f in downs for tag in f.tags)
                summary = extractive_summary(brief, tags, reason)
            cluster["summary"] = summary
            if cid in rows:
                rows[cid].summary = summary
            results[cid] = summary
    finally:
        if writer is not None:
            writer.close()
    by_id = {int(c["id"]): c for c in clusters}
    for cluster in report.get("clusters") or []:
        if int(cluster.get("id", -1)) in by_id:
            cluster["summary"] = by_id[int(cluster["id"])]["summary"]
    run.report = report  # a new object, so the JSON column is written
    session.flush()
    llm = sum(1 for s in results.values() if s["generated_by"] != "extractive")
    log.info(
        "summaries written run=%s clusters=%d llm=%d extractive=%d tokens=%d",
        run_id,
        len(results),
        llm,
        len(results) - llm,
        writer.used if writer else 0,
    )
    return results


def _llm_summary(
    session: Session, writer: _LLMWriter, brief: ClusterBrief
) -> tuple[dict[str, Any] | None, str]:
    messages = render_summary_prompt(brief)
    key = _cache_key(writer.model, messages)
    cached = session.get(Summary, key)
    if cached is not None:
        return dict(cached.summary), ""
    fields, reason = writer.write(messages)
    if fields is None:
        return None, reason
    summary = {
        "title": fields["title"],
        "text": fields["summary"],
        "root_cause": fields["root_cause"],
        "suggested_fix": fields["suggested_fix"],
        "generated_by": f"llm:{writer.model}",
        "prompt_version": SUMMARY_PROMPT_VERSION,
    }
    session.merge(Summary(content_hash=key, generated_by=summary["generated_by"], summary=summary))
    return summary, ""
