"""Shared fixtures: every storage test runs on every store."""

from __future__ import annotations

import sys

import pytest
from notebook_shell import Notebook

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


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NBSESSIONS_MODEL", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    hook = sys.displayhook
    yield tmp_path
    sys.displayhook = hook


@pytest.fixture
def nb(workdir):
    """A fresh shell with the extension loaded, in a tmp working directory with no API settings."""
    notebook = Notebook()
    yield notebook
    notebook.close()


@pytest.fixture
def served(nb, openai_server):
    """The notebook talking to the loopback server, streaming every chunk (no throttling)."""
    nb.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
    nb.run("%config AgentMagics.model = 'local-model'")
    nb.run("%config AgentMagics.update_interval = 0")
    return nb
