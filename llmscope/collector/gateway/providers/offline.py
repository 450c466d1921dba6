"""The ``offline`` provider: deterministic, plausible support-assistant answers, no network.

For demos and tests (``llmscope demo`` drives it). The answer depends on the question: a topic
is chosen by keywords (passwords, billing, delivery, ...), the wording by a hash of the text, so
the same question always gets the same answer and different questions get different ones.
Token counts are estimated from word counts; each call takes ``config.latency_ms`` (default 40,
varied by up to ±30% per question). Embeddings are hashed bags of words, L2-normalised, so
similar texts get similar vectors. Records say ``provider: offline`` and carry the tag
``llmscope.offline: "true"``.

It follows one kind of instruction, so that a system prompt's wording shows in the answers (and a
changed prompt can be tried against the old one): a sentence of a system message that states a
policy (``Refund policy: ...``) is quoted as the answer's last step, as a model told to quote
its policy would. The demo's ``refund-policy@3`` carries an outdated policy; its answers say so.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llmscope.collector.gateway.providers.base import Provider
from llmscope.collector.gateway.providers.payloads import (
    Choice,
    ChunkEnvelope,
    ResponsePayload,
    Usage,
)
from llmscope.text import last_user_text

_WORD = re.compile(r"[A-Za-z0-9']+")
# "Refund policy: ... ." up to a full stop that ends the sentence (not the one in "$6.95").
_POLICY = re.compile(r"\b[A-Z][A-Za-z-]*(?: [A-Za-z-]+)? policy: .+?\.(?=\s|$)")

# (keywords, opening lines, steps): the steps are picked and ordered by the question's hash.
TOPICS: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = [
    (
        ("password", "login", "log", "sign", "locked", "2fa", "reset", "account"),
        ("Sorry you're having trouble getting into your account.", "Let's get you signed in."),
        (
            "Open the sign-in page and choose 'Forgot password'.",
            "Enter the e-mail address on your account; the reset link arrives within 5 minutes.",
            "Check your spam folder if the e-mail does not show up.",
            "If two-factor authentication is on, have your authenticator app ready.",
            "After five failed attempts the account locks for 15 minutes; wait, then try again.",
        ),
    ),
    (
        ("card", "charge", "charged", "refund", "payment", "billing", "invoice", "declined"),
        ("I can help with that billing question.", "Thanks for flagging the payment issue."),
        (
            "Go to Settings → Billing to see every charge and download invoices.",
            "Refunds go back to the original card within 5-10 business days.",
            "A declined card is usually an expired card or a bank block; try another card.",
            "Duplicate charges are often pending authorisations that drop off within 3 days.",
            "For a formal refund request, reply with the invoice number.",
        ),
    ),
    (
        ("order", "delivery", "shipping", "shipped", "package", "tracking", "address", "arrive"),
        ("Here is what I can tell you about your order.", "Let's track that order down."),
        (
            "Open Orders and select the order to see its tracking link.",
            "Standard delivery takes 3-5 business days; express takes 1-2.",
            "You can change the address until the order is marked 'Shipped'.",
            "If tracking has not moved for 5 days, we will open an investigation with the carrier.",
            "Missing items can be reported from the order page within 30 days.",
        ),
    ),
    (
        ("cancel", "subscription", "plan", "upgrade", "downgrade", "trial", "renew"),
        ("Happy to help with your subscription.", "Here's how plans work."),
        (
            "Manage your plan under Settings → Subscription.",
            "Cancelling keeps your access until the end of the paid period.",
            "Upgrades apply immediately and are prorated; downgrades apply at renewal.",
            "Trials convert automatically unless cancelled a day before they end.",
        ),
    ),
    (
        ("crash", "crashes", "error", "bug", "slow", "freeze", "upload", "app", "broken"),
        ("Sorry the app is misbehaving.", "Let's try to fix that."),
        (
            "Update the app to the latest version from your app store.",
            "Restart the device and try again.",
            "Clear the app cache under Settings → Storage.",
            "Uploads over 25 MB are refused; compress the file first.",
            "If it keeps happening, send us the error code shown on screen.",
        ),
    ),
    (
        ("delete", "privacy", "data", "gdpr", "export", "email", "notifications"),
        ("Good question about your data.", "Here's how to control your data."),
        (
            "Export everything from Settings → Privacy → Download my data.",
            "Deleting the account removes your data within 30 days.",
            "Marketing e-mails can be switched off under Notifications.",
        ),
    ),
]
GENERIC = (
    ("Thanks for reaching out.", "Happy to help."),
    (
        "Our help centre has step-by-step guides for most questions.",
        "Support is available Monday to Friday, 8:00-18:00.",
        "If this does not solve it, reply here and an agent will follow up.",
    ),
)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def estimate_tokens(text: str) -> int:
    """Roughly what a BPE tokenizer gives for English: 4/3 tokens per word, at least 1."""
    return max(1, math.ceil(len(_WORD.findall(text)) * 4 / 3))


def policies_in(instructions: str) -> list[str]:
    """The policy sentences of a system prompt, in order (see the module's docstring)."""
    return _POLICY.findall(instructions)


def answer_for(question: str, instructions: str = "") -> str:
    """A deterministic support answer to ``question``, quoting the policies ``instructions``
    (the system prompt) state."""
    words = {w.lower() for w in _WORD.findall(question)}
    best = max(TOPICS, key=lambda topic: len(words.intersection(topic[0])))
    openers, steps = (best[1], best[2]) if words.intersection(best[0]) else GENERIC
    seed = _digest(question)
    opener = openers[seed % len(openers)]
    count = 2 + seed // 7 % max(1, len(steps) - 1)
    order = sorted(range(len(steps)), key=lambda i: _digest(f"{seed}:{i}"))[:count]
    quoted = [steps[i] for i in sorted(order)] + policies_in(instructions)
    lines = [f"{n}. {step}" for n, step in enumerate(quoted, 1)]
    return "\n".join([opener, *lines])


class OfflineProvider(Provider):
    name = "offline"
    offline = True

    async def _pause(self, text: str) -> None:
        latency = float(self.config.get("latency_ms", 40))
        jitter = 0.7 + (_digest(text) % 601) / 1000  # 0.7 .. 1.3
        await asyncio.sleep(latency * jitter / 1000)

    def _prompt_of(self, body: dict[str, Any]) -> tuple[str, str, str]:
        """``(question, everything sent, the system prompt)``."""
        if "messages" in body:
            messages = list(body.get("messages") or [])
            full = " ".join(str(m.get("content") or "") for m in messages)
            system = " ".join(
                str(m.get("content") or "") for m in messages if m.get("role") == "system"
            )
            return last_user_text(messages), full, system
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
        return text, text, ""

    def _usage(self, prompt: str, answer: str) -> Usage:
        return Usage.of(estimate_tokens(prompt), estimate_tokens(answer))

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._answer(body, "chat", f"chatcmpl-offline-{uuid.uuid4().hex[:24]}")

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._answer(body, "completions", f"cmpl-offline-{uuid.uuid4().hex[:24]}")

    async def _answer(self, body: dict[str, Any], kind: str, answer_id: str) -> dict[str, Any]:
        question, full, system = self._prompt_of(body)
        await self._pause(question)
        answer = answer_for(question, system)
        choice = Choice(answer, finish_reason="stop")
        return ResponsePayload(
            kind, self.model, [choice], self._usage(full, answer), answer_id
        ).wire()

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return self._stream(body, "chat")

    async def completions_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return self._stream(body, "completions")

    async def _stream(self, body: dict[str, Any], kind: str) -> AsyncIterator[dict[str, Any]]:
        question, full, system = self._prompt_of(body)
        answer = answer_for(question, system)
        out = ChunkEnvelope(kind, self.model, f"chatcmpl-offline-{uuid.uuid4().hex[:24]}")
        await self._pause(question)
        pieces = re.findall(r"\S+\s*", answer)
        for i, piece in enumerate(pieces):
            finish = "stop" if i == len(pieces) - 1 else None
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            yield out.piece(delta, finish)
            await asyncio.sleep(0.002)
        yield out.usage(self._usage(full, answer))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", body.get("text"))
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw or []]
        dim = max(1, int(self.config.get("embedding_dim", 256)))
        data = []
        for index, text in enumerate(texts):
            vector = [0.0] * dim
            for word in _WORD.findall(text.lower()):
                h = _digest(word)
                vector[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            data.append(
                {"object": "embedding", "index": index, "embedding": [v / norm for v in vector]}
            )
        await self._pause(" ".join(texts))
        tokens = sum(estimate_tokens(t) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": self.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
