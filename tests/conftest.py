"""Shared fixtures: every storage test runs on every store."""

from __future__ import annotations

import pytest

from nbsessions.db import InMemoryDb, TinyDb


def _memory_db(tmp_path):
    return InMemoryDb()


def _tinydb(tmp_path):
    return TinyDb(tmp_path / "sessions.json")


DB_FACTORIES = {"memory": _memory_db, "tinydb": _tinydb}


@pytest.fixture(params=sorted(DB_FACTORIES))
def db(request, tmp_path):
    """A fresh, empty store of each kind (TinyDB ones in a tmp dir)."""
    store = DB_FACTORIES[request.param](tmp_path)
    yield store
    store.close()
