"""The LLM judge: its prompt, the parsing of its answer, and its call through the gateway.

The prompt (version ``JUDGE_PROMPT_VERSION``, part of every judge's version) follows MLflow's
genai metrics: the metric's definition, its grading prompt and optional scored examples, then
the input and output to grade, and the instruction to answer with one JSON object
``{"score": <int 1..5>, "justification": "<text>"}``. An answer that does not parse is shown
back to the judge once, with what was wrong; a second bad answer is the verdict's ``error``.

The call goes through the gateway's own endpoint, provider, rate limit and recorder as an
*internal* call: recorded (tagged ``llmscope.evaluator``), never analysed, never judged.
Transport trouble (timeouts, refused connections, 5xx after the gateway's retries, a bad key)
raises :class:`JudgeUnavailable`: the record stays pending for a later try.

Judging a record is idempotent: its calls' records get ids derived from the record and the
judge's version (:func:`answer_key`, ``<key>-0`` and ``<key>-1`` for the retry), and the
judge's answer is journaled under that id before the verdict is written. A judge that takes
over the claim of a process that died after the answer came back passes the stored answers in
(``earlier``) and applies them instead of asking again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmscope.collector.gateway.evaluators import LLMJudge
from llmscope.collector.gateway.extension import CallMeta
from llmscope.collector.gateway.providers import ProviderError
from llmscope.collector.gateway.recording import Call
from llmscope.collector.gateway.service import Gateway
from llmscope.collector.gateway.shapes import first_text

MAX_TEXT = 6000  # characters of the question and of the answer shown to the judge
MAX_TRANSCRIPT = 4 * MAX_TEXT  # characters of a conversation shown to a session judge
MAX_OUTPUT_TOKENS = 300
ATTEMPTS = 2  # an unparsable answer is shown back to the judge once
EVALUATOR_TAG = "llmscope.evaluator"
# A provider answering one of these refused this request itself: retrying will not help.
FINAL_STATUSES = frozenset({400, 404, 413, 422})


class JudgeUnavailable(Exception):
    """The judge could not be reached (or refused every request): try again later."""


class BadVerdict(ValueError):
    """The judge's answer is not the JSON object asked for; the message says why."""


@dataclass(frozen=True)
class JudgeResult:
    score: int | None
    justification: str | None
    error: str | None
    input_tokens: int
    output_tokens: int
    latency_ms: float
    model: str | None
    record_id: str | None  # the last internal call's record


def answer_key(record_id: str, judge: LLMJudge) -> str:
    """The idempotency key of judging ``record_id`` with this version of ``judge``."""
    text = f"{record_id}\0{judge.name}\0{judge.version}"
    return "judge-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def call_ids(key: str) -> list[str]:
    """The record ids of the calls judging under ``key``, one per attempt."""
    return [f"{key}-{attempt}" for attempt in range(ATTEMPTS)]


def stored_reply(
    response: str, input_tokens: int | None, output_tokens: int | None, model: str | None
) -> dict[str, Any]:
    """A judge call's stored record as the chat answer it recorded."""
    return {
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": response}}],
        "usage": {"prompt_tokens": input_tokens or 0, "completion_tokens": output_tokens or 0},
    }


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " [...]"


def question_of(prompt: str | None, messages: list[dict[str, Any]] | None) -> str:
    """What was asked: the prompt, or the conversation as ``role: content`` lines."""
    if messages:
        lines = []
        for message in messages:
            content = message.get("content")
            if not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False)
            lines.append(f"{message.get('role', 'user')}: {content}")
        return _cut("\n".join(lines))
    return _cut(prompt or "")


def last_question(prompt: str | None, messages: list[dict[str, Any]] | None) -> str:
    """What one turn asked: the last user message (a chat app resends the whole history with
    every call), or the prompt."""
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return prompt or ""


def transcript(turns: list[tuple[str, str | None]]) -> str:
    """A conversation as the judge reads it: ``User:`` / ``Assistant:`` lines per turn, each
    side cut at ``MAX_TEXT``; when the whole is longer than ``MAX_TRANSCRIPT``, the earliest
    turns are left out (and it says so): how a conversation ended matters most."""
    parts = [
        f"User: {_cut(asked)}\nAssistant: {_cut(answer) if answer else '(no answer)'}"
        for asked, answer in turns
    ]
    kept: list[str] = []
    size = 0
    for part in reversed(parts):
        if kept and size + len(part) > MAX_TRANSCRIPT:
            break
        kept.append(part)
        size += len(part) + 2
    cut = len(parts) - len(kept)
    head = [f"[{cut} earlier turns left out]"] if cut else []
    return "\n\n".join(head + kept[::-1])


def judge_messages(
    judge: LLMJudge, question: str, answer: str, *, conversation: bool = False
) -> list[dict[str, str]]:
    """The chat messages asking ``judge`` to grade one answer, or with ``conversation`` the
    assistant's part in a whole conversation (``question`` is its :func:`transcript`)."""
    system = [
        "You are an impartial judge grading the output of an AI assistant.",
        f"Metric definition: {judge.definition}",
        f"Grading rubric: {judge.grading_prompt}",
        "Scores are integers from 1 (worst) to 5 (best).",
    ]
    for number, example in enumerate(judge.examples, 1):
        system.append(
            f"Example {number}:\nInput: {example.input}\nOutput: {example.output}\n"
            f"Score: {example.score}"
            + (f"\nJustification: {example.justification}" if example.justification else "")
        )
    system.append(
        'Reply with one JSON object only: {"score": <integer 1-5>, "justification": '
        '"<one or two sentences>"}.'
    )
    user = f"Input:\n{_cut(question)}\n\nOutput:\n{_cut(answer)}\n\nGrade the output."
    if conversation:
        system[0] = "You are an impartial judge grading an AI assistant over a whole conversation."
        user = (
            f"Conversation:\n{question}\n\n"
            "Grade the assistant's part in the whole conversation as one output."
        )
    return [{"role": "system", "content": "\n\n".join(system)}, {"role": "user", "content": user}]


_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(text: str | None) -> tuple[int, str]:
    """``(score, justification)`` from the judge's answer; BadVerdict saying what is wrong."""
    if not text or not text.strip():
        raise BadVerdict("the answer is empty")
    match = _OBJECT.search(text)
    if match is None:
        raise BadVerdict("the answer holds no JSON object")
    try:
        value = json.loads(match.group(0))
    except ValueError:
        raise BadVerdict("the answer is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadVerdict("the answer is not a JSON object")
    score = value.get("score")
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score.strip())
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise BadVerdict('"score" must be an integer from 1 to 5')
    justification = value.get("justification")
    if not isinstance(justification, str):
        raise BadVerdict('"justification" must be a string')
    return score, justification[:4000]


async def call_endpoint(
    gateway: Gateway,
    endpoint: str,
    body: dict[str, Any],
    tags: dict[str, str],
    record_id: str | None = None,
) -> tuple[dict[str, Any], str]:
    """One internal chat call through the gateway's endpoint; ``(answer, record id)``.

    Waits out the endpoint's rate limit rather than failing. ProviderError as the gateway
    would answer it; the call is recorded either way (as ``record_id`` when given).
    """
    state = gateway.state
    assert state is not None, "the gateway is not started"
    spec = state.config.endpoint(endpoint)
    if spec is None:
        raise ProviderError(404, {"error": {"message": f"no endpoint named {endpoint!r}"}})
    provider = state.providers[spec.name]
    limiter = state.limiters.get(spec.name)
    while limiter is not None and (wait := limiter.acquire()):
        await asyncio.sleep(wait)
    call = Call(
        endpoint=spec.name,
        kind="chat",
        body=body,
        meta=CallMeta(tags=tags, internal=True),
        provider=spec.model.provider,
        model=spec.model.name,
        log_content=spec.log_content,
        offline=provider.offline,
    )
    if record_id is not None:
        call.id = record_id
    try:
        answer = await provider.chat(dict(body))
        call.take_usage(answer.get("usage"))
        call.response = first_text(answer, "chat")
        return answer, call.id
    except ProviderError as exc:
        call.fail(exc.message)
        raise
    finally:
        with contextlib.suppress(Exception):  # recording trouble never fails a judgement
            gateway.writer.submit(call.row(), log_content=call.log_content)


async def judge_answer(
    gateway: Gateway,
    judge: LLMJudge,
    question: str,
    answer: str,
    *,
    key: str | None = None,
    earlier: Mapping[str, dict[str, Any] | None] | None = None,
    conversation: bool = False,
) -> JudgeResult:
    """Ask ``judge`` to grade ``answer``; one retry on an unparsable answer.

    With ``key`` the calls are recorded as :func:`call_ids` ``(key)``, and ``earlier`` holds
    what the store already has under those ids: an answer (applied, not asked again) or None
    (a call that got none: asked again, recorded under a fresh id).
    Raises JudgeUnavailable when the endpoint cannot be reached; every other outcome is a
    JudgeResult (a score, or an error after the retry).
    """
    earlier = earlier or {}
    messages: list[dict[str, str]] = judge_messages(
        judge, question, answer, conversation=conversation
    )
    tokens_in = tokens_out = 0
    started = time.perf_counter()
    record_id: str | None = None
    model: str | None = None
    error = "no answer"
    for attempt in range(ATTEMPTS):
        body = {
            "model": judge.endpoint,
            "messages": messages,
            "temperature": 0,
            "max_tokens": MAX_OUTPUT_TOKENS,
        }
        call_id = None if key is None else call_ids(key)[attempt]
        stored = earlier.get(call_id) if call_id is not None else None
        try:
            if stored is not None:
                reply, record_id = stored, call_id
            else:
                fresh = call_id if call_id not in earlier else None
                reply, record_id = await call_endpoint(
                    gateway, judge.endpoint, body, {EVALUATOR_TAG: judge.name}, fresh
                )
        except ProviderError as exc:
            if exc.status in FINAL_STATUSES:
                error = f"the judge refused the request: {exc.message}"[:2000]
                break
            raise JudgeUnavailable(exc.message) from None
        usage = reply.get("usage") or {}
        tokens_in += int(usage.get("prompt_tokens") or 0)
        tokens_out += int(usage.get("completion_tokens") or 0)
        model = reply.get("model") if isinstance(reply.get("model"), str) else model
        text = first_text(reply, "chat")
        try:
            score, justification = parse_verdict(text)
        except BadVerdict as exc:
            error = f"unparsable judge answer ({exc}): {(text or '')[:500]!r}"
            if attempt == 0:
                messages = [
                    *messages,
                    {"role": "assistant", "content": text or ""},
                    {
                        "role": "user",
                        "content": f"That reply cannot be used: {exc}. Reply with the JSON "
                        'object only: {"score": <integer 1-5>, "justification": "<text>"}.',
                    },
                ]
            continue
        return JudgeResult(
            score,
            justification,
            None,
            tokens_in,
            tokens_out,
            (time.perf_counter() - started) * 1000,
            model,
            record_id,
        )
    return JudgeResult(
        None,
        None,
        error,
        tokens_in,
        tokens_out,
        (time.perf_counter() - started) * 1000,
        model,
        record_id,
    )
