"""The seeded store every experiment test starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluate.experiments.support import cluster_records, seed_run
from tests.evaluate.experiments.world import N


@pytest.fixture
def seeded(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Cluster 0: ``N`` calls rendered from the failing ``support@1`` (two thumbs-down);
    cluster 1: five from the fixed ``support@2``."""
    monkeypatch.setenv("LLMSCOPE_DATA_DIR", str(tmp_path / "data"))
    seed_run(
        database_url,
        {0: cluster_records(N), 1: cluster_records(5, prefix="c1", version="2")},
        thumbs_down=["c0-0003", "c0-0007"],
    )
    return database_url
