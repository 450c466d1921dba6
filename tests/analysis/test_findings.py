"""The run's findings: every flag once, ranked by severity (calls x effect), told in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from llmscope.analysis.alerts import alert_candidates
from llmscope.analysis.cli import report_summary
from llmscope.analysis.findings import build_findings
from llmscope.report import (
    ClusterEntry,
    Drift,
    FeedbackCounts,
    GlobalDrift,
    Hotspot,
    HotspotTest,
    LatencySlice,
    MixShare,
    NovelGroup,
    Regression,
    RunReport,
    TokenSlice,
    WindowInfo,
)

MOMENT = datetime(2026, 11, 20, tzinfo=UTC)


def entry(cid: int, current: int, baseline: int, **fields: Any) -> ClusterEntry:
    """A cluster of a run with 1,000 records a window and nothing flagged unless given."""
    quiet: dict[str, Any] = {
        "drift": Drift(kind="stable", score=0.0, p_value=0.5, q_value=0.9, flagged=False),
        "feedback": FeedbackCounts(rated=0, down=0, down_rate=None),
        "hotspot": Hotspot(lift=1.0, p_value=0.5, q_value=0.9, flagged=False),
    }
    return ClusterEntry(
        id=cid,
        size=current + baseline,
        baseline_count=baseline,
        current_count=current,
        baseline_share=baseline / 1000,
        current_share=current / 1000,
        keywords=[f"topic{cid}"],
        latency_ms=LatencySlice(p50=None, p95=None),
        tokens=TokenSlice(input_p50=None, output_p50=None),
        **{**quiet, **fields},
    )


def regression(base: float, cur: float, calls: int, flagged: bool = True) -> Regression:
    return Regression(
        baseline=base,
        current=cur,
        ratio=cur / base if base else None,
        p_value=1e-7,
        q_value=1e-6 if flagged else 0.5,
        flagged=flagged,
        baseline_calls=100,
        current_calls=calls,
    )


def report(clusters: list[ClusterEntry], *, global_flagged: bool = False) -> RunReport:
    return RunReport(
        run_id="run-1",
        created_at=MOMENT,
        baseline=WindowInfo(start=MOMENT, end=MOMENT, records=1000),
        current=WindowInfo(start=MOMENT, end=MOMENT, records=1000),
        global_drift=GlobalDrift(
            statistic=0.1, p_value=0.002, flagged=global_flagged, method="mmd"
        ),
        clusters=clusters,
    )


def planted() -> RunReport:
    hot = Hotspot(
        kind="persistent", lift=9.0, p_value=1e-9, q_value=1e-8, flagged=True,
        persistent=HotspotTest(rated=40, down=36, lift=9.0, flagged=True),
    )  # fmt: skip
    mix = {
        "endpoint": {
            "support-chat-large": MixShare(
                baseline=2, current=40, baseline_share=0.02, current_share=1.0
            ),
            "support-chat": MixShare(baseline=98, current=0, baseline_share=0.98, current_share=0),
        }
    }
    new = Drift(kind="new", score=8.0, p_value=1e-20, q_value=1e-19, flagged=True)
    shrank = Drift(kind="shrank", score=-1.0, p_value=1e-5, q_value=1e-4, flagged=True)
    return report(
        [
            # 36 of 40 thumbed down against a rest at 1/9 of that rate: 40 x (0.9 - 0.1) = 32
            entry(
                0, 40, 40, hotspot=hot, feedback=FeedbackCounts(rated=40, down=36, down_rate=0.9)
            ),
            # median latency 150 -> 600 ms over 40 calls: 40 x (1 - 1/4) = 30
            entry(1, 40, 100, regressions={"latency_ms": regression(150, 600, 40)}, mix=mix),
            # a new topic of 200 calls: a tenth of the 200 calls it gained = 20
            entry(2, 200, 0, drift=new),
            # 100 calls where its baseline share expected 200: a tenth of 100 missing = 10
            entry(3, 100, 200, drift=shrank),
            # error rate 0 -> 25% over 40 calls: 10 extra failed calls; ties with the drift
            # and ranks before it (kind order); the unflagged cost change is no finding
            entry(
                4,
                40,
                100,
                regressions={
                    "error_rate": regression(0.0, 0.25, 40),
                    "cost_usd": regression(0.001, 0.002, 40, flagged=False),
                },
            ),  # fmt: skip
        ]
    )


def test_findings_are_ranked_by_calls_times_effect() -> None:
    found = build_findings(planted())
    assert [(f.kind, f.cluster_id, f.metric) for f in found] == [
        ("hotspot", 0, None),
        ("regression", 1, "latency_ms"),
        ("new_cluster", 2, None),
        ("regression", 4, "error_rate"),
        ("drift", 3, None),
    ]
    assert [f.severity for f in found] == pytest.approx([32, 30, 20, 10, 10])


def test_a_regression_says_what_moved_underneath() -> None:
    (latency,) = [f for f in build_findings(planted()) if f.metric == "latency_ms"]
    assert latency.message == (
        'Regression in cluster 1 "topic1": median latency went from 150 ms to 600 ms '
        "(4.0x; q=1e-06) over 40 current calls; 40 of its 40 current calls went to endpoint "
        "support-chat-large (2 of 100 in the baseline)."
    )
    (errors,) = [f for f in build_findings(planted()) if f.metric == "error_rate"]
    assert "error rate went from 0.0% to 25.0% (q=1e-06) over 40 current calls." in errors.message


def test_global_drift_weighs_the_share_of_traffic_that_moved() -> None:
    # Shares 50/50 -> 70/30: a fifth of the 1,000 current calls moved; a hundredth of that.
    (found,) = build_findings(report([entry(0, 700, 500), entry(1, 300, 500)], global_flagged=True))
    assert (found.kind, found.cluster_id) == ("global_drift", None)
    assert found.severity == pytest.approx(2)


def test_alerts_follow_the_findings_order_and_rules() -> None:
    run = planted()
    run.findings = build_findings(run)
    every = {"hotspot", "regression", "new_cluster", "drift", "global_drift", "eval_hotspot"}
    alerts = alert_candidates(run, every)
    assert [(a.kind, a.cluster_id, a.metric) for a in alerts] == [
        (f.kind, f.cluster_id, f.metric) for f in run.findings
    ]
    assert [a.kind for a in alert_candidates(run, every - {"regression"})] == [
        "hotspot",
        "new_cluster",
        "drift",
    ]


def test_the_novel_groups_drift_is_a_finding_without_a_cluster() -> None:
    run = report([entry(0, 900, 1000)])
    run.novel = NovelGroup(
        size=100, baseline_count=0, current_count=100, baseline_share=0.0, current_share=0.1,
        max_similarity=0.5,
        drift=Drift(kind="new", score=7.0, p_value=1e-12, q_value=1e-11, flagged=True),
    )  # fmt: skip
    (found,) = build_findings(run)
    assert (found.kind, found.cluster_id, found.severity) == ("drift", None, pytest.approx(10))
    assert found.message.startswith("Questions far from every cluster (new): 100 in the current")


def test_analyze_prints_the_findings_in_their_order() -> None:
    run = planted()
    run.findings = build_findings(run)
    lines = report_summary(run).splitlines()
    assert lines[0] == "run run-1: 5 clusters, 5 findings"
    assert lines[4:] == [f"  {i}. [{f.kind}] {f.message}" for i, f in enumerate(run.findings, 1)]
