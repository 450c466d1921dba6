"""One replayed call through the gateway, and the evaluators' verdicts on one answer.

A replay goes through the gateway's own endpoint, provider, rate limit, pricing and recorder,
as an *internal* call (recorded, never analysed, never judged) tagged
``llmscope.experiment=<id>`` and ``llmscope.experiment.variant=<name>``, with the template name,
version, text and variables it was rendered from. A traffic-split route draws its destination
and falls back as live calls do (``Gateway.targets``), and the record names the route. Judging
reuses the evaluations' parts: the built-in checks (``checks.run_check``) and the LLM judge's
client (``judge.judge_answer``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from llmscope.collector.costs.pricing import PriceTable
from llmscope.collector.gateway.evaluators import Evaluator, LLMJudge
from llmscope.collector.gateway.extension import CallMeta
from llmscope.collector.gateway.providers import ProviderError
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.service import Gateway, worth_another
from llmscope.collector.gateway.shapes import first_text
from llmscope.evaluate.evaluations.checks import run_check
from llmscope.evaluate.evaluations.judge import JudgeUnavailable, judge_answer, question_of
from llmscope.evaluate.experiments.spec import Replay

EXPERIMENT_TAG = "llmscope.experiment"
VARIANT_TAG = "llmscope.experiment.variant"


@dataclass
class Answer:
    text: str | None
    error: str | None
    call_record_id: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    cost_usd: float | None


async def replay(
    gateway: Gateway, request: Replay, experiment_id: str, variant: str, prices: PriceTable
) -> Answer:
    """Send ``request`` through the gateway as an internal call; the answer or its error."""
    state = gateway.state
    assert state is not None, "the gateway is not started"
    route, endpoints = gateway.targets(request.endpoint)
    assert endpoints, "endpoints and routes are checked before anything is called"
    call = Call(
        endpoint=endpoints[0].name,
        kind=request.kind,
        body=dict(request.body),
        meta=CallMeta(
            template=request.template,
            version=request.version,
            variables=request.variables,
            template_text=request.template_text,
            tags={EXPERIMENT_TAG: experiment_id, VARIANT_TAG: variant},
            internal=True,
        ),
    )
    call.route = route.name if route is not None else None
    error: str | None = None
    for position, spec in enumerate(endpoints):
        # A route draws its destination and falls back as the gateway does for live calls.
        provider = state.providers[spec.name]
        call.endpoint, call.provider, call.model = spec.name, spec.model.provider, spec.model.name
        call.log_content, call.offline = spec.log_content, provider.offline
        limiter = state.limiters.get(spec.name)
        while limiter is not None and (wait := limiter.acquire()):
            await asyncio.sleep(wait)
        try:
            if request.kind == "chat":
                reply = await provider.chat(dict(request.body))
            else:
                reply = await provider.completions(dict(request.body))
        except ProviderError as exc:
            if position < len(endpoints) - 1 and worth_another(exc.status):
                continue
            call.fail(exc.message)
            error = exc.message[:2000]
            break
        call.take_usage(reply.get("usage"))
        call.response = first_text(reply, request.kind)
        break
    latency = call.elapsed_ms()
    gateway.record(call)
    row = {"model": call.model, "input_tokens": call.input_tokens}
    row["output_tokens"] = call.output_tokens
    return Answer(
        text=call.response,
        error=error,
        call_record_id=call.id,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        latency_ms=round(latency, 3),
        cost_usd=prices.cost(row),
    )


async def judge(
    gateway: Gateway | None,
    evaluators: list[Evaluator],
    *,
    question: str,
    answer: str | None,
    latency_ms: float | None,
    have: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int]:
    """Every evaluator's verdict on one answer (``have``: verdicts already known, by name, kept
    when their version is current); ``(verdicts, judge tokens spent)``."""
    verdicts: dict[str, Any] = {}
    tokens = 0
    for evaluator in evaluators:
        known = (have or {}).get(evaluator.name)
        if known and known.get("version") == evaluator.version and known.get("error") is None:
            verdicts[evaluator.name] = known
            continue
        if isinstance(evaluator, LLMJudge):
            if answer is None or gateway is None:
                continue
            started = time.perf_counter()
            try:
                result = await judge_answer(gateway, evaluator, question, answer)
            except JudgeUnavailable as exc:
                verdicts[evaluator.name] = _verdict(evaluator, None, None, None, str(exc))
                continue
            tokens += result.input_tokens + result.output_tokens
            passed = None if result.score is None else result.score >= evaluator.pass_threshold
            verdicts[evaluator.name] = {
                **_verdict(evaluator, result.score, passed, result.justification, result.error),
                "judge_record_id": result.record_id,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        else:
            # off the event loop: a check reads the whole answer (CPU work)
            verdict = await asyncio.to_thread(run_check, evaluator, answer, latency_ms)
            if verdict is not None:
                verdicts[evaluator.name] = _verdict(
                    evaluator, verdict.score, verdict.passed, verdict.justification, verdict.error
                )
    return verdicts, tokens


def _verdict(
    evaluator: Evaluator,
    score: float | None,
    passed: bool | None,
    why: str | None,
    error: str | None,
) -> dict[str, Any]:
    return {
        "version": evaluator.version,
        "type": evaluator.type,
        "score": None if score is None else float(score),
        "passed": passed,
        "justification": why,
        "error": error,
    }


def question_for(prompt: str | None, messages: list[dict[str, Any]] | None) -> str:
    """What the judge is shown as the input (the evaluations' own rendering)."""
    return question_of(prompt, messages)
