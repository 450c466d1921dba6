"""The demo's story on hand-made runs: it tells the report's findings in their order, and a
regression only when the analysis flagged one (no rule of its own over the records)."""

from __future__ import annotations

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from llmscope.analysis.findings import build_findings
from llmscope.app.demo.story import tell
from llmscope.db.models import Record
from llmscope.db.queries import load_run_report
from llmscope.report import MixShare, Regression
from tests.analysis.seeding import ClusterSeed, Down, seed_run, unit


def _regression(flagged: bool) -> Regression:
    return Regression(
        baseline=150.0, current=900.0, ratio=6.0, p_value=1e-9, q_value=1e-8 if flagged else 0.4,
        flagged=flagged, baseline_calls=6, current_calls=6,
    )  # fmt: skip


def _run(engine: Engine, latency_flagged: bool) -> list[str]:
    tracking = ClusterSeed(
        id=0,
        centroid=unit(1, 0),
        current=[("where is my parcel", "on its way")] * 6,
        baseline=[("where is my parcel", "on its way")] * 6,
        keywords=["parcel", "track"],
        regressions={"latency_ms": _regression(latency_flagged)},
    )
    refunds = ClusterSeed(
        id=1,
        centroid=unit(0, 1),
        current=[("refund please", "no")] * 3,
        baseline=[("refund please", "no")] * 3,
        keywords=["refund"],
        hotspot_flagged=True,
        downs=[Down(0, ["incorrect"], "wrong policy")],
    )
    run_id = seed_run(engine, [tracking, refunds])
    with Session(engine) as session:
        # Whatever the records say: the current calls are six times slower in the store too.
        session.execute(update(Record).where(Record.id.like(f"{run_id}-c0-current-%")).values(
            latency_ms=2400.0
        ))  # fmt: skip
        session.commit()
        report = load_run_report(session, run_id)
    assert report is not None
    cluster = report.cluster(0)
    assert cluster is not None
    cluster.mix = {
        "endpoint": {
            "chat-large": MixShare(baseline=0, current=6, baseline_share=0.0, current_share=1.0),
            "chat": MixShare(baseline=6, current=0, baseline_share=1.0, current_share=0.0),
        }
    }
    report.findings = build_findings(report)
    return tell(engine, report, hotspot_fdr=0.0125).lines


def test_the_story_follows_the_findings_and_tells_a_flagged_regression(engine: Engine) -> None:
    # 6 calls x (1 - 1/6) = 5 calls made worse; the hotspot's 3 calls x (1 - 1/4) = 2.25.
    lines = _run(engine, latency_flagged=True)
    assert lines[0] == 'Look first at cluster 0 ("parcel / track").'
    assert lines[1] == (
        'Slower: cluster 0 ("parcel / track") median latency went from 150 ms to 900 ms '
        "(6.0x; q=1e-08); 6 of its 6 current calls went to endpoint chat-large "
        "(0 of 6 in the baseline)."
    )
    assert lines[2].startswith('Thumbs-down hotspot, cluster 1 ("refund"): 1 of 1 rated')


def test_no_regression_is_told_that_the_analysis_did_not_flag(engine: Engine) -> None:
    lines = _run(engine, latency_flagged=False)
    assert not any(line.startswith("Slower") for line in lines), lines
    assert lines[0].startswith('Look first at cluster 1 ("refund"): 1 of 1 rated answers')
