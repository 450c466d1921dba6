"""The typed run report: the contract's JSON in, the same JSON out; old runs load; no NaN."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from llmscope.app.server import create_app
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker
from llmscope.db.models import AnalysisRun
from llmscope.report import ClusterEntry, ClusterSummary, RunReport, TemplateVersionRow


def stored_report() -> dict[str, Any]:
    """A report as the analysis stored it (keys in the contract's order)."""
    cluster = {
        "id": 0,
        "size": 12,
        "baseline_count": 2,
        "current_count": 10,
        "baseline_share": 0.02,
        "current_share": 0.1,
        "keywords": ["refund", "card"],
        "examples": ["r-1", "r-2"],
        "drift": {
            "kind": "grew",
            "score": 2.3,
            "p_value": 0.001,
            "q_value": 0.004,
            "flagged": True,
        },
        "feedback": {"rated": 8, "down": 6, "down_rate": 0.75},
        "hotspot": {"lift": 3.5, "p_value": None, "q_value": None, "flagged": False},
        "latency_ms": {"p50": 410.0, "p95": None},
        "tokens": {"input_p50": 20.0, "output_p50": 41.5},
        "templates": {"support@2": 12},
        "summary": {
            "title": "Refunds",
            "text": "12 requests.",
            "root_cause": None,
            "suggested_fix": None,
            "generated_by": "extractive",
            "reason": "no summary LLM configured",
        },
    }
    llm = copy.deepcopy(cluster)
    llm["id"] = 1
    llm["summary"] = {
        "title": "Refund window",
        "text": "Users ask about the refund window.",
        "root_cause": "The template quotes 14 days.",
        "suggested_fix": "Say 30 days.",
        "generated_by": "llm:gpt-4o-mini",
        "prompt_version": "summary-v1",
    }
    return {
        "run_id": "run-1",
        "created_at": "2026-11-20T12:00:00.123456Z",
        "baseline": {
            "start": "2026-11-12T12:00:00Z",
            "end": "2026-11-19T12:00:00Z",
            "records": 100,
        },
        "current": {"start": "2026-11-19T12:00:00Z", "end": "2026-11-20T12:00:00Z", "records": 100},
        "global_drift": {"statistic": 0.2, "p_value": 0.002, "flagged": True, "method": "mmd"},
        "clusters": [cluster, llm],
        "findings": [
            {"kind": "drift", "cluster_id": 0, "severity": 0.8, "message": "Cluster 0 grew."},
            {"kind": "global_drift", "cluster_id": None, "severity": 0.4, "message": "Changed."},
        ],
        "alerts": [{"kind": "global_drift", "cluster_id": None, "message": "Traffic changed."}],
        "template_versions": [
            {
                "template": "support",
                "version": "3",
                "against": "2",
                "down_rate": 0.5,
                "against_down_rate": 0.1,
                "down_p_value": 0.01,
                "latency_p50_ms": None,
                "against_latency_p50_ms": None,
                "latency_p_value": None,
                "down_q_value": 0.02,
                "latency_q_value": None,
                "records": 40,
                "against_records": 60,
            }
        ],
    }


def test_a_stored_report_comes_back_key_for_key_in_order() -> None:
    stored = stored_report()
    report = RunReport.from_stored(stored)
    assert report.created_at == datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)
    assert report.clusters[1].summary is not None
    assert report.clusters[1].summary.prompt_version == "summary-v1"
    # Byte for byte, so `llmscope analyze --json` prints what it always printed.
    assert json.dumps(report.to_json()) == json.dumps(stored)


def test_an_older_report_loads_with_defaults_and_drops_removed_keys() -> None:
    stored = stored_report()
    del stored["template_versions"], stored["alerts"]
    del stored["clusters"][0]["summary"], stored["clusters"][0]["templates"]
    stored["clusters"][0]["from_the_past"] = {"x": 1}
    stored["clusters"][0]["drift"]["old_score"] = 0.5
    stored["settings_used"] = {"timings": {"embed": 1.5}}
    report = RunReport.from_stored(stored)
    assert report.template_versions == [] and report.alerts == []
    assert report.clusters[0].summary is None and report.clusters[0].templates == {}
    out = report.to_json()
    assert "settings_used" not in out and "from_the_past" not in out["clusters"][0]
    assert set(out["clusters"][0]["drift"]) == {"kind", "score", "p_value", "q_value", "flagged"}
    # Only the store's reader is lenient: the same keys from anywhere else are refused.
    with pytest.raises(ValidationError, match="settings_used"):
        RunReport.model_validate(stored)


def test_a_misspelt_key_is_refused_naming_it() -> None:
    stored = stored_report()
    row = stored["template_versions"][0]
    row["down_pvalue"] = row.pop("down_p_value")
    with pytest.raises(ValidationError, match=r"template_versions\.0\.down_pvalue\n.*Extra inputs"):
        RunReport.model_validate(stored)
    with pytest.raises(ValidationError, match="down_pvalue"):
        TemplateVersionRow(**row)


def test_a_stored_run_with_a_removed_key_is_served(tmp_path: Path, database_url: str) -> None:
    stored = stored_report()
    stored["clusters"][0]["removed_since"] = [1, 2]
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        moment = datetime(2026, 11, 20, 12, tzinfo=UTC)
        session.add(
            AnalysisRun(
                id="run-1",
                created_at=moment,
                baseline_start=moment,
                baseline_end=moment,
                current_start=moment,
                current_end=moment,
                report=stored,
            )
        )
        session.commit()
    engine.dispose()
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/v1/analysis/runs/latest")
    assert answer.status_code == 200, answer.text
    assert answer.json()["clusters"][0]["keywords"] == ["refund", "card"]
    assert "removed_since" not in answer.json()["clusters"][0]


def test_figures_are_never_nan_and_times_are_utc() -> None:
    stored = stored_report()
    stored["clusters"][0]["hotspot"]["lift"] = math.nan
    stored["clusters"][0]["latency_ms"]["p50"] = math.inf
    stored["created_at"] = "2026-11-20T12:00:00"  # no offset: UTC
    report = RunReport.from_stored(stored)
    assert report.clusters[0].hotspot.lift is None
    assert report.clusters[0].latency_ms.p50 is None
    assert report.to_json()["created_at"] == "2026-11-20T12:00:00Z"


def test_optional_summary_keys_appear_only_when_set() -> None:
    summary = ClusterSummary(title="t", text="x", generated_by="extractive", reason="why")
    assert set(summary.to_json()) == {
        "title",
        "text",
        "root_cause",
        "suggested_fix",
        "generated_by",
        "reason",
    }


def test_a_broken_report_is_refused_naming_the_field() -> None:
    stored = stored_report()
    stored["clusters"] = [{"id": "not-a-number"}]
    with pytest.raises(ValidationError, match="clusters.0.id"):
        RunReport.from_stored(stored)
    with pytest.raises(ValidationError, match="kind"):
        ClusterEntry.model_validate({**stored_report()["clusters"][0], "drift": {"kind": "odd"}})


def test_openapi_documents_the_run_report(tmp_path: Any) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", data_dir=tmp_path)
    spec = create_app(settings).openapi()
    for path in ("/api/v1/analysis/runs/latest", "/api/v1/analysis/runs/{run_id}"):
        answer = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert answer["schema"] == {"$ref": "#/components/schemas/RunReport"}
    schemas = spec["components"]["schemas"]
    cluster = schemas["ClusterEntry"]["properties"]
    assert {"drift", "feedback", "hotspot", "latency_ms", "tokens", "templates"} <= set(cluster)
    assert schemas["Drift"]["properties"]["kind"]["enum"] == [
        "new",
        "grew",
        "shrank",
        "vanished",
        "stable",
        "not tested",
    ]
