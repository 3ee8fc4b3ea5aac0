"""Storage backends: ``InMemoryDb`` for throwaway work, ``TinyDb`` for notebooks, ``PostgresDb`` for teams."""

from pathlib import Path

from nbsessions.db.base import BaseDb
from nbsessions.db.memory import InMemoryDb
from nbsessions.db.tinydb import TinyDb
from nbsessions.db.urls import is_postgres_url

__all__ = ["BaseDb", "InMemoryDb", "PostgresDb", "TinyDb", "open_store"]


def __getattr__(name: str):
    """``PostgresDb`` loads psycopg on first use only, so importing nbsessions stays cheap without a server."""
    if name == "PostgresDb":
        from nbsessions.db.postgres import PostgresDb

        return PostgresDb
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(target: str | Path, *, meta_scope: str = "", read_only: bool = False) -> BaseDb:
    """``TinyDb`` for a path, ``PostgresDb`` for a ``postgresql://`` URL (psycopg is imported only then).

    ``read_only``: nothing is created or written (a PostgreSQL database nbsessions never wrote to raises
    ``NoSchema``)."""
    if is_postgres_url(str(target)):
        from nbsessions.db.postgres import PostgresDb

        return PostgresDb(str(target).strip(), meta_scope=meta_scope, read_only=read_only)
    return TinyDb(target, read_only=read_only)
