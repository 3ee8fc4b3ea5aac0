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


@pytest.fixture(scope="session")
def _openai_server_session():
    from openai_server import OpenAIServer

    server = OpenAIServer()
    yield server
    server.close()


@pytest.fixture
def openai_server(_openai_server_session):
    """A real OpenAI-compatible server on 127.0.0.1 (see tests/openai_server.py), reset for each test."""
    _openai_server_session.reset()
    return _openai_server_session
