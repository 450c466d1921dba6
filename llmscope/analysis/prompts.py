"""The versioned prompt templates llmscope sends to an LLM (today: cluster summaries).

A template is plain text with ``{placeholders}`` filled by :func:`render_summary_prompt`. Bump
``SUMMARY_PROMPT_VERSION`` whenever the wording changes: the version is part of the summary
cache key, so a new template re-summarises every cluster once instead of serving answers
written for the old one. The summaries guide (``docs/guides/alerts.md``) shows the template in full.

A cluster with evaluations gets two more parts (each evaluator's failures among the numbers,
and the answers an evaluator failed with its justification); for a cluster without them the
prompt is the same text as before, so ``summary-v1`` still names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "SUMMARY_PROMPT_VERSION",
    "SUMMARY_SYSTEM_PROMPT",
    "SUMMARY_USER_TEMPLATE",
    "Example",
    "ClusterBrief",
    "render_summary_prompt",
]

SUMMARY_PROMPT_VERSION = "summary-v1"

SUMMARY_SYSTEM_PROMPT = (
    "You are an analyst reviewing production traffic of an LLM application. You are shown one "
    "cluster of similar requests found by an automatic analysis, with statistics and examples, "
    "and a sample of older traffic for comparison. Explain what users ask in this cluster and "
    "what goes wrong, based only on the evidence shown. Answer with one JSON object and "
    "nothing else, with exactly these string keys:\n"
    '  "title": a name for the cluster, at most 8 words;\n'
    '  "summary": 2-4 sentences: what users ask and what goes wrong;\n'
    '  "root_cause": the most likely cause of the problem, or "none apparent";\n'
    '  "suggested_fix": one concrete change, e.g. to the prompt template, retrieval or routing.'
)

SUMMARY_USER_TEMPLATE = """\
Cluster {cluster_id} ({size} requests; {current_count} in the current window, \
{baseline_count} in the baseline window).

Keywords: {keywords}

Numbers:
- share of traffic: {baseline_share} in the baseline window -> {current_share} now \
(drift: {drift_kind}, flagged: {drift_flagged})
- thumbs-down rate: {down_rate} of {rated} rated answers (lift over the other clusters: \
{lift}, flagged as a hotspot: {hotspot_flagged})
- latency: p50 {latency_p50} ms, p95 {latency_p95} ms
- prompt templates: {templates}

Representative requests and answers (nearest the cluster's centre):
{examples}

Answers users rated thumbs-down, with their feedback tags and comments:
{thumbs_down}

For comparison, a sample of requests from the baseline window:
{baseline}

Reply with the JSON object only."""


@dataclass(frozen=True)
class Example:
    """One request shown to the LLM, already shortened."""

    prompt: str
    response: str = ""
    tags: Sequence[str] = ()
    comment: str = ""


@dataclass(frozen=True)
class ClusterBrief:
    """Everything the summary prompt says about one cluster (numbers already formatted)."""

    cluster_id: int
    size: int
    current_count: int
    baseline_count: int
    keywords: Sequence[str]
    baseline_share: str
    current_share: str
    drift_kind: str
    drift_flagged: bool
    down_rate: str
    rated: int
    lift: str
    hotspot_flagged: bool
    latency_p50: str
    latency_p95: str
    templates: str
    examples: Sequence[Example] = field(default_factory=tuple)
    thumbs_down: Sequence[Example] = field(default_factory=tuple)
    baseline: Sequence[Example] = field(default_factory=tuple)
    # "- evaluator NAME: F of N answers failed (R, lift L, flagged as a hotspot: yes|no)" lines
    evaluations: Sequence[str] = field(default_factory=tuple)
    # answers an evaluator failed: ``tags`` = (evaluator,), ``comment`` = its justification
    judge_failures: Sequence[Example] = field(default_factory=tuple)


def _judged(examples: Sequence[Example]) -> str:
    lines = []
    for i, example in enumerate(examples, 1):
        lines.append(f"{i}. User: {example.prompt}")
        if example.response:
            lines.append(f"   Answer: {example.response}")
        who = example.tags[0] if example.tags else "evaluator"
        lines.append(f'   Failed by {who}: "{example.comment}"')
    return "\n".join(lines)


def _numbered(examples: Sequence[Example], *, with_response: bool, with_feedback: bool) -> str:
    if not examples:
        return "(none)"
    lines = []
    for i, example in enumerate(examples, 1):
        lines.append(f"{i}. User: {example.prompt}")
        if with_response and example.response:
            lines.append(f"   Answer: {example.response}")
        if with_feedback:
            tags = ", ".join(example.tags) if example.tags else "no tags"
            comment = f' - "{example.comment}"' if example.comment else ""
            lines.append(f"   Feedback: thumbs-down ({tags}){comment}")
    return "\n".join(lines)


def render_summary_prompt(brief: ClusterBrief) -> list[dict[str, str]]:
    """The chat messages asking for one cluster's summary."""
    user = SUMMARY_USER_TEMPLATE.format(
        cluster_id=brief.cluster_id,
        size=brief.size,
        current_count=brief.current_count,
        baseline_count=brief.baseline_count,
        keywords=", ".join(brief.keywords) or "(none)",
        baseline_share=brief.baseline_share,
        current_share=brief.current_share,
        drift_kind=brief.drift_kind,
        drift_flagged="yes" if brief.drift_flagged else "no",
        down_rate=brief.down_rate,
        rated=brief.rated,
        lift=brief.lift,
        hotspot_flagged="yes" if brief.hotspot_flagged else "no",
        latency_p50=brief.latency_p50,
        latency_p95=brief.latency_p95,
        templates=brief.templates,
        examples=_numbered(brief.examples, with_response=True, with_feedback=False),
        thumbs_down=_numbered(brief.thumbs_down, with_response=True, with_feedback=True),
        baseline=_numbered(brief.baseline, with_response=False, with_feedback=False),
    )
    if brief.evaluations:
        numbers_end = "\n\nRepresentative requests and answers"
        user = user.replace(numbers_end, "\n" + "\n".join(brief.evaluations) + numbers_end, 1)
    if brief.judge_failures:
        block = (
            "Answers an evaluator (an LLM judge or a check) failed, with its justification:\n"
            + _judged(brief.judge_failures)
        )
        baseline_start = "\n\nFor comparison, a sample of requests from the baseline window:"
        user = user.replace(baseline_start, "\n\n" + block + baseline_start, 1)
    return [
        {"role": "system", "content": SUMMARY_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]
