"""Storage backends: ``InMemoryDb`` for throwaway work, ``TinyDb`` for notebooks, ``PostgresDb`` for teams."""

from nbsessions.db.base import BaseDb
from nbsessions.db.memory import InMemoryDb
from nbsessions.db.tinydb import TinyDb

__all__ = ["BaseDb", "InMemoryDb", "PostgresDb", "TinyDb"]


def __getattr__(name: str):
    """``PostgresDb`` loads psycopg on first use only, so importing nbsessions stays cheap without a server."""
    if name == "PostgresDb":
        from nbsessions.db.postgres import PostgresDb

        return PostgresDb
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
