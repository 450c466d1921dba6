"""A small hand-written traffic store for the analysis job's end-to-end tests.

Baseline week: passwords, refunds, shipping. Current day: the same three plus weather (a
topic that is new), and refund answers draw thumbs-down (a hotspot). Internal records and
records outside both windows are also stored, and must never be analysed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from llmscope.db.models import Feedback, Record

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CURRENT = f"{(NOW - timedelta(days=1)).isoformat()}/{NOW.isoformat()}"
BASELINE = f"{(NOW - timedelta(days=8)).isoformat()}/{(NOW - timedelta(days=1)).isoformat()}"

OPENINGS = ["", "Hi, ", "Hello! ", "Quick question: ", "Please help. "]
TOPICS = {
    "password": [
        "how do I reset my password?",
        "I forgot my password and cannot log in",
        "the password reset link does not work",
        "how can I change my account password",
        "my password is not accepted anymore",
        "where do I set a new login password",
    ],
    "refund": [
        "I want a refund for my order",
        "how long does a refund take to arrive",
        "my refund has not been received yet",
        "can I get my money back for this purchase",
        "how do I request a refund for a damaged item",
        "why was my refund request rejected",
    ],
    "shipping": [
        "where is my package right now",
        "how can I track my shipment",
        "my delivery is late by three days",
        "when will my parcel arrive",
        "the courier says the parcel was delivered but I have nothing",
        "can I change the delivery address of my parcel",
    ],
    "weather": [
        "what is the weather forecast for tomorrow",
        "will it rain this afternoon",
        "how cold will it be this weekend",
        "is it going to snow tonight",
        "what is the temperature outside right now",
        "should I take an umbrella today",
    ],
}


def question(rng: random.Random, topic: str) -> str:
    return rng.choice(OPENINGS) + rng.choice(TOPICS[topic])


def seed_traffic(engine: Engine, per_window: int = 150) -> None:
    """Store the scenario: ``per_window`` analysed records in each window, plus decoys."""
    rng = random.Random(7)
    records: list[Record] = []
    feedback: list[Feedback] = []
    for i in range(per_window):
        topic = ("password", "refund", "shipping")[i % 3]
        moment = NOW - timedelta(days=1, hours=1 + rng.uniform(0, 160))
        records.append(_record(f"{topic}-b{i}", moment, question(rng, topic), "1"))
    for i in range(per_window):
        topic = ("password", "refund", "shipping", "weather")[i % 4]
        moment = NOW - timedelta(hours=rng.uniform(0.1, 23.5))
        records.append(_record(f"{topic}-c{i}", moment, question(rng, topic), "2"))
        down = rng.random() < (0.85 if topic == "refund" else 0.1)
        # An earlier opposite thumb: only the latest event may count.
        feedback.append(_thumb(f"{topic}-c{i}", "up" if down else "down", NOW - timedelta(hours=2)))
        feedback.append(_thumb(f"{topic}-c{i}", "down" if down else "up", NOW - timedelta(hours=1)))
    for i in range(20):  # llmscope's own summary calls: recorded, never analysed
        records.append(
            _record(f"internal-{i}", NOW - timedelta(hours=2), "Summarise cluster 3", "2", True)
        )
    records.append(_record("too-old", NOW - timedelta(days=30), "how do I reset my password?", "1"))
    with Session(engine) as session:
        session.add_all(records)
        session.flush()
        session.add_all(feedback)
        session.commit()


def _record(
    record_id: str, moment: datetime, text: str, version: str, internal: bool = False
) -> Record:
    return Record(
        id=record_id,
        timestamp=moment,
        endpoint="support-chat",
        model="gpt-4o-mini",
        prompt=text,
        response="Here is what you can do.",
        template_name="support",
        template_version=version,
        input_tokens=len(text.split()) + 20,
        output_tokens=6,
        latency_ms=300.0 + len(text) * (2.0 if version == "2" else 1.0),
        internal=internal,
        # priced in the current window only (template version 2): gpt-4o-mini's list price
        cost_usd=((len(text.split()) + 20) * 0.15 + 6 * 0.60) / 1e6 if version == "2" else None,
    )


def _thumb(record_id: str, thumb: str, moment: datetime) -> Feedback:
    return Feedback(record_id=record_id, thumb=thumb, created_at=moment)
