"""Incremental embedding: fill the embedding cache with the texts of records as they arrive.

:func:`embed_new_records` is the one function that ``llmscope embed`` and the scheduled worker
call: it reads the non-internal records of a time range in pages (memory stays flat at any
store size), finds the texts the cache lacks for the configured encoder, and embeds them, so
a later analysis run only clusters. It is idempotent: a second call over the same records
embeds nothing. With ``received_after`` it only reads records the collector received since
then (the ``--follow`` loop's watermark).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import cached_vectors, fill_cache, record_text, text_hash
from llmscope.analysis.encoders import Encoder, encoder_for
from llmscope.config import Settings
from llmscope.db.models import Record, analysable

# Records read per page; their missing texts are embedded before the next page is read.
PAGE = 5000
TEXT_COLUMNS = (
    Record.id,
    Record.prompt,
    Record.messages,
    Record.response,
    Record.template_variables,
    Record.received_at,
)


@dataclass
class EmbedProgress:
    """What one call did: records read, texts newly embedded, the newest ``received_at`` seen."""

    records: int = 0
    embedded: int = 0
    newest_received: datetime | None = None


def embed_new_records(
    session: Session,
    settings: Settings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    received_after: datetime | None = None,
    encoder: Encoder | None = None,
    progress: bool = False,
) -> EmbedProgress:
    """Embed the texts (``LLMSCOPE_EMBED_FIELD``) of records in [since, until) the cache lacks.

    Records marked internal are skipped, as the analysis skips them. ``encoder`` defaults to
    the one the settings name (``encoders.encoder_for``).
    """
    encoder = encoder or encoder_for(settings)
    done = EmbedProgress()
    for missing in missing_texts(
        session,
        settings,
        encoder.key,
        done,
        since=since,
        until=until,
        received_after=received_after,
    ):
        done.embedded += fill_cache(session, encoder, list(missing.values()), progress=progress)
    session.commit()
    return done


def missing_texts(
    session: Session,
    settings: Settings,
    key: str,
    done: EmbedProgress,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    received_after: datetime | None = None,
) -> Iterator[dict[str, str]]:
    """Per page of records, their distinct texts the cache lacks for ``key`` (hash -> text).

    Counts the records read and the newest ``received_at`` into ``done``. A page is read only
    after the caller is done with the previous one, so texts it embedded meanwhile are cached.
    """
    query = select(*TEXT_COLUMNS).where(analysable())
    if since is not None:
        query = query.where(Record.timestamp >= since)
    if until is not None:
        query = query.where(Record.timestamp < until)
    if received_after is not None:
        query = query.where(Record.received_at > received_after)
    # Keyset pagination on the primary key: each page is one short query, whatever the size.
    last_id: str | None = None
    while True:
        page_query = query.order_by(Record.id).limit(PAGE)
        if last_id is not None:
            page_query = page_query.where(Record.id > last_id)
        rows = session.execute(page_query).mappings().all()
        if not rows:
            return
        last_id = rows[-1]["id"]
        done.records += len(rows)
        newest = max(r["received_at"] for r in rows)
        if done.newest_received is None or newest > done.newest_received:
            done.newest_received = newest
        found = (record_text(dict(r), settings.embed_field) for r in rows)
        texts = {text_hash(t): t for t in found if t}
        cached = cached_vectors(session, key, list(texts))
        yield {h: t for h, t in texts.items() if h not in cached}


def newest_received(session: Session) -> datetime | None:
    """When the collector received its latest record (the start of a ``--follow`` watermark)."""
    return session.scalar(select(func.max(Record.received_at)))
