"""Shared fixtures: every storage test runs on every store; one recording fake model for every test."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import pytest
from notebook_shell import Notebook

from nbsessions.db import InMemoryDb, TinyDb
from nbsessions.llm.offline import FunctionModel
from nbsessions.records import redact
from nbsessions.records.schema import Message


@pytest.fixture(autouse=True, scope="session")
def _own_state_folder(tmp_path_factory):
    """Final writes a test's store never answered are kept under $XDG_STATE_HOME: the run's own, never ~'s.
    Left set after the session: what is still waiting at exit is spooled by an atexit handler, after it."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield


@pytest.fixture(autouse=True)
def _fresh_secrets():
    """Each test starts with no secret but the default variable's: a test key must not redact the next test's text."""
    yield
    redact.forget()


def echo(messages: list[Message]) -> str:
    """The fake model's default reply: names the prompt that reached it."""
    return f"echo {messages[-1].content}"


class RecordingModel(FunctionModel):
    """The recording fake model: replies with ``reply(messages)`` (``echo`` by default; a string is a constant
    reply) and keeps what each request sent in ``requests`` (lists of messages, oldest request first), so a test
    asserts what the model saw instead of encoding it into the reply text.
    ``prompts`` are the contents of each request, the shape most assertions want."""

    def __init__(self, reply: Callable[[list[Message]], object] | str = echo, id: str = "echo") -> None:
        self.requests: list[list[Message]] = []
        answer = (lambda messages: reply) if isinstance(reply, str) else reply

        def respond(messages: list[Message]) -> object:
            self.requests.append(list(messages))
            return answer(messages)

        super().__init__(respond, id=id)

    @property
    def prompts(self) -> list[list[str | None]]:
        return [[m.content for m in request] for request in self.requests]

    @property
    def history_counts(self) -> list[int]:
        """How many messages of each request came from history (``from_history``): what the context carried."""
        return [sum(m.from_history for m in request) for request in self.requests]


def _memory_db(tmp_path):
    return InMemoryDb()


def _tinydb(tmp_path):
    return TinyDb(tmp_path / "sessions.json")


DB_FACTORIES = {"memory": _memory_db, "tinydb": _tinydb}


def skip_or_fail_postgres(message: str) -> NoReturn:
    """Skip a PostgreSQL test with why; under ``NBSESSIONS_REQUIRE_POSTGRES=1`` (CI) fail instead."""
    if os.environ.get("NBSESSIONS_REQUIRE_POSTGRES") == "1":
        pytest.fail(message + " (required here: NBSESSIONS_REQUIRE_POSTGRES=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the test run (see tests/pg_server.py), on a Unix socket in a temp dir."""
    from pg_server import PostgresServer, find_binaries, missing_reason

    if find_binaries() is None:
        skip_or_fail_postgres(missing_reason())
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        skip_or_fail_postgres("psycopg is missing: pip install 'psycopg[binary,pool]' to run the PostgreSQL tests")
    server = PostgresServer.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def _postgres_database(postgres_server):
    url, _name = postgres_server.create_database()
    return url


@pytest.fixture
def postgres_url(_postgres_database):
    """The test database with nbsessions' tables emptied (creating a database per test costs ~0.5 s); its URL."""
    import psycopg

    with psycopg.connect(_postgres_database, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('nbsessions.sessions')").fetchone()[0] is not None:
            conn.execute("TRUNCATE nbsessions.sessions, nbsessions.runs, nbsessions.meta")
    return _postgres_database


@pytest.fixture(params=[*sorted(DB_FACTORIES), pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    """A fresh, empty store of each kind (TinyDB ones in a tmp dir, PostgreSQL ones in a new database)."""
    if request.param == "postgres":
        from nbsessions.db.postgres import PostgresDb

        store = PostgresDb(request.getfixturevalue("postgres_url"))
    else:
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
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NBSESSIONS_MODEL", "JPY_SESSION_NAME", "NBSESSIONS_DB_URL"):
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


@pytest.fixture
def frequent_thread_switches():
    """Switch threads every microsecond, so a race window (read-then-write, a read inside a commit) is entered
    by another thread often."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.fixture
def chromium() -> str:
    """The Chromium the browser tests drive; without one they skip (fail under ``NBSESSIONS_REQUIRE_BROWSER=1``)."""
    from browser_harness import chromium_path

    return chromium_path()


@pytest.fixture
def jupyterlab(tmp_path, chromium):
    """A JupyterLab server of its own on 127.0.0.1, serving a fresh temp dir (see tests/browser_harness.py).

    Depends on ``chromium`` so a machine without a browser skips before paying for a server start.
    """
    from browser_harness import jupyterlab_server

    with jupyterlab_server(tmp_path) as lab:
        yield lab
