"""The demo's traffic plan: two weeks of calls to Larkspur Home's assistant, with planted events.

:func:`make_plan` turns a record count and an end time into a list of :class:`PlannedCall`
(when, who, which question, which endpoint and prompt template, and the feedback the user will
give), deterministically for a given seed. Everyday traffic follows a daily and weekly rhythm
over the topics in :mod:`llmscope.app.demo.bank`. In the current window (the last three days) three
things change, as they do in production:

1. **A new topic**: gift cards launch, and customers start asking about them (the launch
   campaign brings half as much traffic again).
2. **A bad template version**: ``refund-policy@3`` is rolled out with the old, outdated refund
   policy pasted in, and refund and return answers start drawing thumbs-down
   ("outdated", "incorrect").
3. **A latency rise**: order-tracking questions are routed to the larger, slower model
   (endpoint ``support-chat-large``) instead of ``support-chat``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from llmscope.app.demo.bank import TOPICS, UP_COMMENTS, UP_TAGS, Topic, ask, comment_for

__all__ = [
    "ENDPOINTS",
    "TEMPLATES",
    "PlannedCall",
    "PlannedFeedback",
    "Timeline",
    "make_plan",
    "timeline_ending",
]

T = TypeVar("T")
DAYS = 14
CURRENT_DAYS = 3
FAST, LARGE = "support-chat", "support-chat-large"
# endpoint name -> (offline model name, typical latency in ms)
ENDPOINTS: dict[str, tuple[str, int]] = {
    FAST: ("offline-mini", 150),
    LARGE: ("offline-large", 1100),
}

_PERSONA = (
    "You are Lark, the support assistant of Larkspur Home, an online shop for home goods. "
    "Answer the customer's message briefly and politely. "
)
_POLICY_NOW = (
    "Refund policy: items can be returned within 30 days of delivery, free of charge, with the "
    "label from the Orders page; refunds reach the original payment method within 5-10 "
    "business days of the return being scanned. "
)
# The planted mistake: v3 was edited from an old copy of the policy.
_POLICY_OLD = (
    "Refund policy: items can be returned within 14 days of delivery; a $6.95 return fee is "
    "deducted; refunds are issued as store credit within 30 days. "
)
# (name, version) -> the system prompt the app sends; registered in the gateway's YAML.
TEMPLATES: dict[tuple[str, str], str] = {
    ("support-general", "3"): _PERSONA + "If you are unsure, point to the help centre.",
    ("support-general", "4"): _PERSONA
    + "Use short numbered steps. If you are unsure, point to the help centre.",
    ("account-help", "2"): _PERSONA
    + "Never ask for the customer's password or full card number. Explain sign-in, "
    "two-factor and privacy settings step by step.",
    ("refund-policy", "2"): _PERSONA + _POLICY_NOW + "Quote the policy when it applies.",
    ("refund-policy", "3"): _PERSONA + _POLICY_OLD + "Quote the policy when it applies.",
    ("order-status", "1"): _PERSONA
    + "Explain where to find tracking, usual delivery times and what to do about delays.",
}

HOURLY = (
    0.30, 0.20, 0.15, 0.15, 0.20, 0.30, 0.50, 0.70, 0.90, 1.00, 1.00, 1.00,
    0.95, 0.95, 1.00, 1.00, 0.95, 0.90, 0.85, 0.80, 0.70, 0.60, 0.50, 0.40,
)  # fmt: skip
CHANNELS = (("web", 0.55), ("ios", 0.25), ("android", 0.20))
RATE_SHARE = 0.30  # share of answers a user rates on an ordinary day
BAD_VERSION_RATE_SHARE = 0.80  # angry users rate more often
BAD_VERSION_DOWN_RATE = 0.90
BAD_VERSION_TAGS = (("outdated",), ("incorrect",), ("outdated", "incorrect"))
BAD_VERSION_COMMENTS = (
    "It says I only have 14 days to return, your website says 30.",
    "Quoted the old refund policy.",
    "It told me refunds come as store credit. I paid by card!",
    "There is no return fee any more, this is wrong.",
    "Refunds take 30 days?? Last time it was a week.",
    "The return window is wrong, it's 30 days now.",
)
GIFT_CARD_SHARE = 0.15  # of traffic once gift cards launched
LAUNCH_TRAFFIC = 1.5  # the launch campaign brings more customers in the last days


@dataclass(frozen=True)
class Timeline:
    """The replayed fortnight: baseline = [start, current_start), current = [current_start, end)."""

    start: datetime
    current_start: datetime
    end: datetime


@dataclass(frozen=True)
class PlannedFeedback:
    value: str  # up | down
    tags: tuple[str, ...]
    comment: str | None


@dataclass(frozen=True)
class PlannedCall:
    timestamp: datetime
    topic: str
    question: str
    endpoint: str
    template: str
    version: str
    user_id: str
    session_id: str
    channel: str
    feedback: PlannedFeedback | None

    @property
    def system_prompt(self) -> str:
        return TEMPLATES[(self.template, self.version)]


def timeline_ending(end: datetime) -> Timeline:
    """The fortnight ending at ``end`` (to the minute), the last three days being current."""
    end = end.replace(second=0, microsecond=0)
    return Timeline(
        start=end - timedelta(days=DAYS),
        current_start=end - timedelta(days=CURRENT_DAYS),
        end=end,
    )


def _intensity(moment: datetime, timeline: Timeline) -> float:
    weekend = 0.75 if moment.weekday() >= 5 else 1.0
    launch = LAUNCH_TRAFFIC if moment >= timeline.current_start else 1.0
    return HOURLY[moment.hour] * weekend * launch / LAUNCH_TRAFFIC


def _timestamps(count: int, timeline: Timeline, rng: random.Random) -> list[datetime]:
    """``count`` call times over the fortnight, following the daily and weekly rhythm."""
    span = (timeline.end - timeline.start).total_seconds()
    stamps: list[datetime] = []
    while len(stamps) < count:  # rejection sampling
        moment = timeline.start + timedelta(seconds=rng.random() * span)
        if rng.random() < _intensity(moment, timeline):
            stamps.append(moment)
    return sorted(stamps)


def _version(template: str, moment: datetime, timeline: Timeline) -> str:
    if template == "support-general":
        # An uneventful rollout: v4 replaced v3 on day 5.
        return "4" if moment >= timeline.start + timedelta(days=5) else "3"
    if template == "refund-policy":
        return "3" if moment >= timeline.current_start else "2"
    return {"account-help": "2", "order-status": "1"}[template]


def _endpoint(topic: Topic, moment: datetime, timeline: Timeline) -> str:
    if topic.key == "damaged":
        return LARGE  # complex cases always went to the larger model
    if topic.key == "tracking" and moment >= timeline.current_start:
        return LARGE  # the planted change: tracking moved to the larger, slower model
    return FAST


def _feedback(
    topic: Topic, version: str, endpoint: str, rng: random.Random
) -> PlannedFeedback | None:
    bad_version = topic.template == "refund-policy" and version == "3"
    if rng.random() >= (BAD_VERSION_RATE_SHARE if bad_version else RATE_SHARE):
        return None
    if bad_version:
        if rng.random() < BAD_VERSION_DOWN_RATE:
            comment = rng.choice(BAD_VERSION_COMMENTS) if rng.random() < 0.7 else None
            return PlannedFeedback("down", rng.choice(BAD_VERSION_TAGS), comment)
    elif rng.random() < topic.down_rate + (0.04 if endpoint == LARGE else 0.0):
        slow = endpoint == LARGE and rng.random() < 0.3
        tags = ("slow",) if slow else (rng.choice(topic.down_tags),)
        return PlannedFeedback("down", tags, comment_for(topic.down_comments, rng))
    return PlannedFeedback("up", rng.choice(UP_TAGS), rng.choice(UP_COMMENTS) or None)


def _pick(weighted: Sequence[tuple[T, float]], rng: random.Random) -> T:
    total = sum(w for _, w in weighted)
    point = rng.random() * total
    for topic, weight in weighted:
        point -= weight
        if point < 0:
            return topic
    return weighted[-1][0]


def make_plan(count: int, timeline: Timeline, *, seed: int = 7) -> list[PlannedCall]:
    """``count`` calls over ``timeline``, oldest first; the same seed gives the same plan."""
    rng = random.Random(seed)
    everyday = [(t, t.weight) for t in TOPICS if t.weight > 0]
    gift_cards = next(t for t in TOPICS if t.key == "gift_cards")
    launched = timeline.current_start + timedelta(hours=2)
    gift_weight = sum(w for _, w in everyday) * GIFT_CARD_SHARE / (1 - GIFT_CARD_SHARE)
    users = max(20, count // 4)
    calls: list[PlannedCall] = []
    for moment in _timestamps(count, timeline, rng):
        mix = everyday + [(gift_cards, gift_weight)] if moment >= launched else everyday
        topic = _pick(mix, rng)
        version = _version(topic.template, moment, timeline)
        endpoint = _endpoint(topic, moment, timeline)
        user = rng.randrange(users)
        channel = _pick(CHANNELS, rng)
        calls.append(
            PlannedCall(
                timestamp=moment,
                topic=topic.key,
                question=ask(topic, rng),
                endpoint=endpoint,
                template=topic.template,
                version=version,
                user_id=f"cust-{user:05d}",
                session_id=f"cust-{user:05d}-{moment:%Y%m%d}",
                channel=channel,
                feedback=_feedback(topic, version, endpoint, rng),
            )
        )
    return calls
