"""Storage backends: ``InMemoryDb`` for throwaway work, ``TinyDb`` for notebooks."""

from nbsessions.db.base import BaseDb
from nbsessions.db.memory import InMemoryDb
from nbsessions.db.tinydb import TinyDb

__all__ = ["BaseDb", "InMemoryDb", "TinyDb"]
