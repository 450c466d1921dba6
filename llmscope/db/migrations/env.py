"""Alembic environment: runs on the connection llmscope hands over (see llmscope.db.upgrade)."""

from alembic import context

from llmscope.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - migrations always run through llmscope.db.upgrade
    raise RuntimeError("run migrations with `llmscope db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
