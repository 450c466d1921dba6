"""Asking the configured LLM for a cluster's summary: the token budget, one retry, the cache.

Calls go to the OpenAI-compatible ``Settings.summary_llm_url`` with
``X-LLMScope-Internal: true``. A bad answer is shown back to the model once with what was wrong;
two transport failures in a row mark the endpoint broken for the rest of the run. Answers are
cached in ``summaries`` by a hash of the prompt version, the model and the rendered prompt.
``openai`` is imported when a writer is made (only runs that call an LLM pay its ~1 s import).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, cast

from sqlalchemy.orm import Session

from llmscope.analysis.prompts import SUMMARY_PROMPT_VERSION, ClusterBrief, render_summary_prompt
from llmscope.analysis.summaries.evidence import short
from llmscope.analysis.summaries.parse import SummaryError, parse_summary
from llmscope.config import Settings, revealed
from llmscope.db.models import Summary
from llmscope.report import ClusterSummary

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

__all__ = ["INTERNAL_HEADER", "LLMWriter", "llm_summary"]

log = logging.getLogger("llmscope.analysis.summaries")

INTERNAL_HEADER = {"X-LLMScope-Internal": "true"}


class LLMWriter:
    """Asks the configured LLM for summaries within the run's token budget."""

    def __init__(self, settings: Settings) -> None:
        import openai

        self.model = str(settings.summary_llm_model)
        self.max_output = settings.summary_max_output_tokens
        self.budget = settings.summary_max_tokens_per_run
        self.used = 0
        self.broken: str | None = None  # set once the endpoint itself fails: stop calling it
        self.client = openai.OpenAI(
            base_url=str(settings.summary_llm_url),
            # The gateway needs no key unless API keys are on; the client insists on one.
            api_key=revealed(settings.summary_llm_api_key) or "llmscope-no-key",
            timeout=settings.summary_timeout_s,
            max_retries=0,  # the retry policy is ours: once, then extractive
            default_headers=INTERNAL_HEADER,
        )
        # What a failed call raises: counted as the endpoint's failure, not the answer's.
        self.transport_errors: tuple[type[Exception], ...] = (openai.APIError, OSError)

    def close(self) -> None:
        self.client.close()

    def _estimate(self, messages: list[dict[str, str]]) -> int:
        # ~4 characters per token for English: a bound good enough for a budget.
        return sum(len(m["content"]) for m in messages) // 4 + self.max_output

    def _call(self, messages: list[dict[str, str]]) -> str | None:
        estimate = self._estimate(messages)
        response = self.client.chat.completions.create(
            model=self.model,
            messages=cast("list[ChatCompletionMessageParam]", messages),
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
            except self.transport_errors as exc:
                transport_failures += 1
                reason = f"LLM call failed: {type(exc).__name__}: {short(str(exc))}"
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
                    {"role": "assistant", "content": short(content)},
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


def llm_summary(
    session: Session, writer: LLMWriter, brief: ClusterBrief
) -> tuple[ClusterSummary | None, str]:
    """(the LLM's summary of ``brief``, "") from the cache or the LLM, or (None, why not)."""
    messages = render_summary_prompt(brief)
    key = _cache_key(writer.model, messages)
    cached = session.get(Summary, key)
    if cached is not None:
        return ClusterSummary.from_stored(cached.summary), ""
    fields, reason = writer.write(messages)
    if fields is None:
        return None, reason
    summary = ClusterSummary(
        title=fields["title"],
        text=fields["summary"],
        root_cause=fields["root_cause"],
        suggested_fix=fields["suggested_fix"],
        generated_by=f"llm:{writer.model}",
        prompt_version=SUMMARY_PROMPT_VERSION,
    )
    session.merge(
        Summary(content_hash=key, generated_by=summary.generated_by, summary=summary.to_json())
    )
    return summary, ""
