"""Dependencies shared by the routes: the store session, the settings, the record writer, and
the check that a body's text can be stored (:func:`encodable_body`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from llmscope.collector.ingest import RecordWriter
from llmscope.collector.ingest.encodable import might_hold_surrogates, unencodable_location
from llmscope.config import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_writer(request: Request) -> RecordWriter:
    writer: RecordWriter = request.app.state.writer
    return writer


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


async def encodable_body(request: Request) -> None:
    """A 422 naming the field when the JSON body holds a lone surrogate (``"\\ud800"``): no
    store can encode it, and the REST API refuses what it cannot keep as sent."""
    raw = await request.body()
    if not might_hold_surrogates(raw):  # the usual case: one scan of the bytes
        return
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return  # not JSON: the body's own validation answers
    where = unencodable_location(value)
    if where is not None:
        message = "holds a lone surrogate (such as \\ud800), which UTF-8 cannot encode"
        raise RequestValidationError(
            [{"loc": ("body", *where), "msg": message, "type": "string_unicode"}]
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
WriterDep = Annotated[RecordWriter, Depends(get_writer)]
