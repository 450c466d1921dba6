"""The topics of the dashboard's seeded store: each becomes one cluster of the seeded run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
XSS_PROMPT = (
    "<script>window.__llmscope_xss = 1; alert('xss')</script>"
    '<img src=x onerror="window.__llmscope_xss = 2"> Why does the CSV export fail?'
)
XSS_RECORD_ID = "rec-xss"


@dataclass(frozen=True)
class Topic:
    """One kind of question users ask: it becomes one cluster of the seeded run."""

    key: str
    questions: tuple[str, ...]
    answer: str
    keywords: tuple[str, ...]
    center: tuple[float, float]
    baseline_weight: float  # share of baseline traffic
    current_weight: float  # share of current traffic
    down_prob: float
    latency_ms: float
    template: tuple[str, str]
    endpoint: str
    model: str
    drift_kind: str
    title: str


TOPICS: tuple[Topic, ...] = (
    Topic(
        "password",
        (
            "How do I reset my password?",
            "I forgot my password and the reset e-mail never arrives",
            "Can I change my password from the mobile app?",
        ),
        "Open Settings, then Security, then choose Reset password.",
        ("password", "reset", "email", "login"),
        (-4.0, 2.0),
        0.40,
        0.30,
        0.08,
        380.0,
        ("support", "2"),
        "support-chat",
        "gpt-4o-mini",
        "stable",
        "Password resets",
    ),
    Topic(
        "refund",
        (
            "How long does a refund take to reach my card?",
            "I was charged twice, can I get a refund?",
            "Where do I see the status of my refund?",
        ),
        "Refunds reach your card within 5 to 10 business days.",
        ("refund", "charged", "card", "billing"),
        (3.5, 3.0),
        0.20,
        0.25,
        0.15,
        520.0,
        ("billing", "1"),
        "billing-chat",
        "gpt-4o",
        "grew",
        "Refund timing and double charges",
    ),
    Topic(
        "shipping",
        (
            "Where is my parcel? The tracking page shows nothing",
            "Can I change the delivery address of an order that shipped?",
            "My order says delivered but I never received it",
        ),
        "You can follow your parcel on the tracking page with the number from your e-mail.",
        ("parcel", "tracking", "delivery", "order"),
        (0.5, -4.0),
        0.35,
        0.10,
        0.10,
        450.0,
        ("support", "2"),
        "support-chat",
        "gpt-4o-mini",
        "shrank",
        "Parcel tracking",
    ),
    Topic(
        "export",
        (
            "The CSV export of my invoices fails with error 500",
            "Exporting reports to CSV gives an empty file since the update",
            "Why does the invoice export time out?",
        ),
        "Exports are available under Reports, then Export, then CSV.",
        ("export", "csv", "invoice", "error"),
        (4.0, -2.0),
        0.0,
        0.30,
        0.70,
        1450.0,
        ("support", "3"),
        "support-chat",
        "gpt-4o-mini",
        "new",
        "CSV export failures after the update",
    ),
)
