"""PostgreSQL under faults: a server restarted between cells, statements that time out, roles that may not migrate.

Each test drives a real server (tests/pg_server.py): restarts are real ``pg_ctl stop -m fast`` / ``start``.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from test_postgres import WAIT
from worker_protocol import Worker

from nbsessions import Agent
from nbsessions.db.postgres import PostgresDb
from nbsessions.errors import StorageError
from nbsessions.panel import SessionPanel
from nbsessions.schema import RunOutput, RunStatus, Session

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent


def test_the_first_operation_after_a_restart_succeeds_ten_times_in_a_row(postgres_url, postgres_server):
    """Every pooled connection is stale after a restart; none of them may reach the caller as an error."""
    with PostgresDb(postgres_url, pool_size=4) as db:
        session = db.create_session(Session(user_id="bob"))
        first_ops = [
            lambda: db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed)),
            lambda: db.update_session(session.session_id, state_patch={"n": 1}),
            lambda: db.list_sessions(user_id="bob"),
            lambda: db.get_session(session.session_id),
            lambda: db.create_session(Session(user_id="bob")),
            lambda: db.set_meta("k", "v"),
            lambda: db.list_runs(session.session_id),
            lambda: db.session_totals(session.session_id),
            lambda: db.upsert_run(RunOutput(session_id=session.session_id), durable=False),
            lambda: db.delete_session(db.create_session(Session(user_id="bob")).session_id),
        ]
        for op in first_ops:
            with contextlib.ExitStack() as held:  # the pool at its full size: four connections go stale at once
                for _ in range(4):
                    held.enter_context(db._connection("warm the pool"))
            postgres_server.restart()
            op()  # before: "terminating connection due to administrator command" or "no free connection"
        assert db.get_session(session.session_id).session_state == {"n": 1}
        assert len(db.list_runs(session.session_id)) == 2


def test_the_panel_shows_store_errors_on_its_status_line_and_never_raises_them(postgres_url, postgres_server,
                                                                               caplog):
    with PostgresDb(postgres_url, timeout=1) as db:
        agent = Agent(db=db, user_id="ann")
        session = agent.create_session("notes", user_id="ann")
        agent.set_active_session(session.session_id)
        panel = SessionPanel(agent=agent)
        try:
            postgres_server.stop()
            try:
                for button in (panel.actions.rename, panel.refresh_button):
                    panel.actions.name.value = "renamed"
                    panel.status.value = ""
                    button.click()  # ipywidgets logs what a click handler raises, and the front end shows nothing
                    assert panel.status.value.startswith("PostgreSQL postgresql://nbsessions@/")
                    assert "cannot" in panel.status.value and "\n" not in panel.status.value
            finally:
                postgres_server.start_again()
            assert not [r for r in caplog.records if "Exception in callback" in r.getMessage()]
            panel.refresh_button.click()
            assert panel.status.value == ""  # back: the error is gone and the session shows again
            panel.actions.rename.click()
            assert db.get_session(session.session_id).session_name == "renamed"
        finally:
            panel.close()


def test_live_updates_follow_the_user_the_agent_acts_as(postgres_url):
    """`%agent user carol` sets the notebook Agent's user: the panel then hears carol's writes, not bob's."""
    with PostgresDb(postgres_url) as db:
        agent = Agent(db=db, user_id="bob")
        bobs = agent.create_session("bob's", user_id="bob")
        carols = agent.create_session("carol's", user_id="carol")
        panel = SessionPanel(agent=agent)
        heard: queue.Queue[tuple[str, str]] = queue.Queue()
        agent.add_listener(lambda *event: heard.put(event), other_kernels=True)  # called after the panel's
        kernel = Worker("journal_worker.py", postgres_url)
        try:
            agent.user_id = "carol"  # what `%agent user carol` does to the notebook's Agent
            agent.set_active_session(carols.session_id)
            panel.refresh()
            runs = [RunOutput(session_id=sid, user_id=user, status=RunStatus.completed, input="from elsewhere",
                              content=f"a reply written elsewhere for {user}")
                    for sid, user in ((bobs.session_id, "bob"), (carols.session_id, "carol"))]
            assert kernel.call(cmd="upsert", runs=[r.to_dict() for r in runs]) == {"done": 2}
            events = [heard.get(timeout=WAIT)]
            while events[-1] != ("run", carols.session_id):
                events.append(heard.get(timeout=WAIT))
            assert {sid for _event, sid in events} == {carols.session_id}  # bob's, committed first, never came
            assert "a reply written elsewhere for carol" in panel.history.markup
        finally:
            kernel.close()
            panel.close()


@pytest.fixture
def fresh_url(postgres_server):
    """A database nothing has touched yet (no nbsessions schema)."""
    url, name = postgres_server.create_database()
    yield url
    postgres_server.drop_database(name)


def has_schema(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regnamespace('nbsessions')").fetchone()[0] is not None


def test_the_command_lines_readers_create_nothing_in_an_empty_database(fresh_url):
    for argv in (["ls", fresh_url], ["show", fresh_url, "anything"], ["export", fresh_url, "anything"]):
        result = subprocess.run([sys.executable, "-m", "nbsessions", *argv], cwd=ROOT, capture_output=True,
                                text=True)
        assert (result.returncode, result.stdout) == ((0, "no sessions\n") if argv[0] == "ls" else (1, ""))
        assert has_schema(fresh_url) is False, argv  # before: `ls` created the schema and its tables
    assert "no session 'anything'" in result.stderr


def test_a_reader_cannot_write_even_by_mistake(postgres_url):
    PostgresDb(postgres_url).close()
    with PostgresDb(postgres_url, read_only=True) as reader:
        assert reader.list_sessions() == []
        with pytest.raises(StorageError, match="read-only transaction"):
            reader.set_meta("k", "v")


def test_a_statement_timeout_is_reported_as_a_timeout_and_the_next_operation_works(postgres_url):
    with PostgresDb(postgres_url) as db:
        session = db.create_session(Session(user_id="ann"))
    slow = postgres_url + "&options=" + quote("-c statement_timeout=200")
    with PostgresDb(slow) as db, psycopg.connect(postgres_url) as locker:
        locker.execute("SELECT 1 FROM nbsessions.sessions WHERE session_id = %s FOR UPDATE", [session.session_id])
        with pytest.raises(StorageError) as info:  # waits on the row lock until the statement times out
            db.update_session(session.session_id, state_patch={"a": 1})
        message = str(info.value)
        assert "canceling statement due to statement timeout" in message and "statement_timeout" in message
        assert "connection was lost" not in message
        locker.rollback()
        assert db.update_session(session.session_id, state_patch={"a": 1}).session_state == {"a": 1}


def test_a_role_that_may_not_migrate_is_told_so(postgres_server, fresh_url):
    dbname = fresh_url.split("/")[3].split("?")[0]
    postgres_server.admin("DO $$ BEGIN CREATE ROLE newcomer LOGIN PASSWORD 'np-s3cret-77'; "
                          "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    postgres_server.admin(f"REVOKE CREATE ON DATABASE {dbname} FROM PUBLIC")
    with pytest.raises(StorageError) as info:
        PostgresDb(postgres_server.url(dbname, user="newcomer", password="np-s3cret-77"))
    message = str(info.value)
    assert "cannot open: the database is at nbsessions schema version 0" in message
    assert "role 'newcomer' may not apply migration 1 (sessions, runs and meta tables)" in message
    assert "permission denied for database" in message and "as a role that may" in message
    assert "np-s3cret-77" not in message and "\n" not in message
    assert has_schema(fresh_url) is False
