"""The one typed record row: every key a ``records`` column, typed as nullable as the column."""

from __future__ import annotations

from types import NoneType
from typing import get_args, get_type_hints

from llmscope.db.models import Record
from llmscope.db.record_row import RECORD_ROW, RecordRow


def test_the_record_row_is_the_records_columns_it_names() -> None:
    hints = get_type_hints(RecordRow)
    columns = Record.__table__.c
    assert [c.key for c in RECORD_ROW] == list(hints)
    for name, hint in hints.items():
        assert name in columns, name
        assert (NoneType in get_args(hint)) == bool(columns[name].nullable), name
