"""The CSV export of a cluster's records (``/export/clusters/<id>.csv?run=...``), streamed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine

from llmscope.dashboard import data

# Cells a spreadsheet would run as a formula (CSV injection): prefixed with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def cluster_csv(
    engine: Engine, run_id: str | None, cluster_id: int
) -> tuple[str, Iterator[str]] | None:
    """(file name, CSV text in chunks) of every record of the cluster; None if there is no
    such run or cluster."""
    found = data.run_report(engine, run_id)
    if found is None:
        return None
    run, report = found
    cluster = data.find_cluster(report, cluster_id)
    if cluster is None:
        return None
    members = data.members_of(engine, run.id, cluster)  # a sub-cluster's own records

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(data.EXPORT_COLUMNS)
        for i, row in enumerate(data.export_rows(engine, run.id, cluster_id, members), 1):
            writer.writerow([safe_cell(v) for v in row])
            if i % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return f"cluster-{cluster_id}-{run.id}.csv", chunks()
