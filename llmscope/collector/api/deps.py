"""Dependencies shared by the routes: the store session, the settings and the record writer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from llmscope.collector.ingest import RecordWriter
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


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
WriterDep = Annotated[RecordWriter, Depends(get_writer)]
