"""Persistence: SQLAlchemy Core tables, queries and Alembic migrations. The only place SQL lives."""

from pyfaas.store.store import Store, open_store

__all__ = ["Store", "open_store"]
