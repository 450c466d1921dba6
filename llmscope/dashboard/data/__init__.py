"""The dashboard's read queries: pure functions of an engine and a view's filters.

They return plain dicts and dataclasses (no Dash in here), so each is tested on a seeded store.
"""

from llmscope.dashboard.data.clusters import (
    EXPORT_COLUMNS,
    MAP_LIMIT,
    MapPoints,
    cluster_counts,
    cluster_records,
    cluster_values,
    export_rows,
    find_cluster,
    in_cluster,
    map_points,
    nested_clusters,
    share_by_day,
    sorted_clusters,
    subcluster_counts,
)
from llmscope.dashboard.data.common import Filters, bucket_unit, record_text, snippet
from llmscope.dashboard.data.costs import cost_by
from llmscope.dashboard.data.evaluations import (
    evaluator_versions,
    experiment_judges,
    fail_rate_by_day,
    failing_examples,
)
from llmscope.dashboard.data.evidence import down_by, down_by_day, down_tags, tool_failures
from llmscope.dashboard.data.implicit import rephrase_pairs, turn_flags
from llmscope.dashboard.data.overview import (
    RunInfo,
    StoreStatus,
    filter_options,
    latest_alerts,
    list_runs,
    run_report,
    store_status,
)
from llmscope.dashboard.data.records import record_detail, record_trace
from llmscope.dashboard.data.sessions import SessionTurns, Turn, ended_badly, session_turns
from llmscope.dashboard.data.subclusters import (
    members_of,
    record_subclusters,
    subcluster_members,
)
from llmscope.dashboard.data.traffic import Traffic, breakdown, totals, traffic, traffic_summary

__all__ = [
    "EXPORT_COLUMNS",
    "MAP_LIMIT",
    "Filters",
    "MapPoints",
    "RunInfo",
    "SessionTurns",
    "StoreStatus",
    "Traffic",
    "Turn",
    "breakdown",
    "ended_badly",
    "bucket_unit",
    "cluster_counts",
    "cluster_records",
    "cluster_values",
    "cost_by",
    "down_by",
    "down_by_day",
    "down_tags",
    "tool_failures",
    "evaluator_versions",
    "experiment_judges",
    "export_rows",
    "fail_rate_by_day",
    "failing_examples",
    "filter_options",
    "find_cluster",
    "in_cluster",
    "latest_alerts",
    "list_runs",
    "map_points",
    "members_of",
    "nested_clusters",
    "record_detail",
    "session_turns",
    "record_trace",
    "rephrase_pairs",
    "record_subclusters",
    "record_text",
    "run_report",
    "share_by_day",
    "snippet",
    "sorted_clusters",
    "subcluster_counts",
    "subcluster_members",
    "store_status",
    "totals",
    "traffic",
    "traffic_summary",
    "turn_flags",
]
