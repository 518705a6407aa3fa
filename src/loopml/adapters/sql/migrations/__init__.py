"""Alembic migrations of the metadata store (run by ``loopml db upgrade``)."""
