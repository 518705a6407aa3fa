"""Alembic environment: migrations always run on a connection handed in by loopml."""

from __future__ import annotations

from alembic import context

from loopml.adapters.sql.schema import metadata

connection = context.config.attributes["connection"]
# transactional_ddl: SQLite runs DDL inside a transaction too, so a whole upgrade (every
# revision it applies) commits at once or not at all, even if the process is killed.
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
