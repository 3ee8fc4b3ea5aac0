"""A team's kernels on one PostgreSQL database: choosing it, per-user isolation, a server restart, a live panel."""

from __future__ import annotations

import queue
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_shell import Notebook, one_red_line
from test_postgres import WAIT
from worker_protocol import Worker

from nbsessions import Agent
from nbsessions.db.postgres import PostgresDb
from nbsessions.magic.scope import configured_db
from nbsessions.panel import SessionPanel
from nbsessions.records.schema import RunOutput, RunStatus

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent


def test_importing_nbsessions_and_its_magic_loads_no_database_driver():
    code = ("import sys, nbsessions, nbsessions.magic.magics, nbsessions.db; "
            "assert 'psycopg' not in sys.modules, 'psycopg imported'; "
            "assert nbsessions.PostgresDb is nbsessions.db.PostgresDb and 'psycopg' in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def kernel_of(user: str, monkeypatch, url: str) -> Notebook:
    """A notebook kernel started by JupyterHub for ``user``, with the hub's database in the environment."""
    monkeypatch.setenv("JUPYTERHUB_USER", user)
    monkeypatch.setenv("NBSESSIONS_DB_URL", url)
    return Notebook()


def test_the_store_is_chosen_by_agent_db_then_config_then_env(tmp_path):
    env = {"NBSESSIONS_DB_URL": "postgresql://hub@db/team"}
    assert configured_db(None, "", "", env) == ("postgresql://hub@db/team", "from $NBSESSIONS_DB_URL")
    assert configured_db(None, "", "mine.json", env)[0] == "mine.json"
    assert configured_db(None, "postgresql://me@db/x", "mine.json", env) == \
        ("postgresql://me@db/x", "set with %config AgentMagics.db_url")
    assert configured_db(("other.json", "set with %agent db"), "postgresql://me@db/x", "", env)[0] == "other.json"
    assert configured_db(None, "", "", {})[0] is None


def test_two_users_kernels_on_one_database_each_see_only_their_own(workdir, monkeypatch, postgres_url):
    ann = kernel_of("ann", monkeypatch, postgres_url)
    try:
        assert ann.run("%%agent --new ann-notes\nAnn's secret plan").result.success
        shown = ann.run("%agent db").stdout
        assert "postgresql://nbsessions@/" in shown and "from $NBSESSIONS_DB_URL" in shown
    finally:
        ann.close()
    bob = kernel_of("bob", monkeypatch, postgres_url)
    try:
        assert bob.run("%%agent --new bob-notes\nBob's question").result.success
        table = bob.run("%agent sessions").outputs[0].data["text/plain"]
        assert "bob-notes" in table and "ann-notes" not in table
        with PostgresDb(postgres_url) as db:
            ann_session = next(s for s in db.list_sessions() if s.session_name == "ann-notes")
        refused = bob.run(f"%%agent -s {ann_session.session_id}\nShow me Ann's plan")
        assert "no session" in one_red_line(refused)  # not even listed: bob cannot name it
        history = bob.run(f"%agent use {ann_session.session_id}")
        assert "no session" in one_red_line(history)
    finally:
        bob.close()
    with PostgresDb(postgres_url) as db:
        owners = {s.session_name: s.user_id for s in db.list_sessions()}
        assert owners == {"ann-notes": "ann", "bob-notes": "bob"}
        assert [r.input for r in db.list_runs(ann_session.session_id)] == ["Ann's secret plan"]


def test_a_server_restart_is_one_clear_line_and_the_next_cell_works(workdir, monkeypatch, postgres_url,
                                                                     postgres_server):
    nb = Notebook()
    try:
        nb.run(f"%config AgentMagics.db_url = '{postgres_url}'")
        assert nb.run("%%agent --new work\nfirst").result.success
        postgres_server.stop()
        try:
            failed = nb.run("%%agent\nsecond")
        finally:
            postgres_server.start_again()
        line = one_red_line(failed)
        assert line.startswith("UsageError: PostgreSQL postgresql://nbsessions@/") and "cannot" in line
        assert nb.run("%%agent\nthird").result.success
        with PostgresDb(postgres_url) as db:
            (session,) = db.list_sessions()
            runs = db.list_runs(session.session_id)
        assert [r.input for r in runs] == ["first", "third"] and runs[-1].status == RunStatus.completed
        assert runs[-1].messages[0].content == "first"  # the next cell continued the session with its history
    finally:
        nb.close()


def test_the_password_never_reaches_the_notebook(workdir, postgres_server, postgres_url):
    from pg_server import PASSWORD, PASSWORD_USER

    dbname = postgres_url.split("/")[3].split("?")[0]
    nb = Notebook()
    try:
        for url in (postgres_server.url(dbname, user=PASSWORD_USER, password=PASSWORD),
                    postgres_server.url(dbname, user=PASSWORD_USER, password="not-" + PASSWORD)):
            ran = [nb.run(f"%agent db {url}"), nb.run("%agent"), nb.run("%%agent\nhi"), nb.run("%agent panel")]
            for cell in ran:
                shown = cell.stdout + cell.stderr + "".join(str(o.data) for o in cell.outputs)
                assert PASSWORD not in shown, shown
        assert "password authentication failed" in one_red_line(ran[0])
    finally:
        nb.close()


def test_an_open_panel_shows_another_kernels_run_without_refresh(postgres_url):
    with PostgresDb(postgres_url) as db:
        agent = Agent(db=db, user_id="ann")
        session = agent.create_session("shared", user_id="ann")
        bobs = agent.create_session("bob's", user_id="bob")
        agent.set_active_session(session.session_id)
        panel = SessionPanel(agent=agent)
        heard: queue.Queue[tuple[str, str]] = queue.Queue()
        agent.add_listener(lambda *event: heard.put(event), other_kernels=True)  # called after the panel's
        kernel = Worker("journal_worker.py", postgres_url)
        try:
            assert "a reply written elsewhere" not in panel.history.markup
            runs = [RunOutput(session_id=sid, user_id=user, status=RunStatus.completed, input="from elsewhere",
                              content=f"a reply written elsewhere for {user}")
                    for sid, user in ((bobs.session_id, "bob"), (session.session_id, "ann"))]
            assert kernel.call(cmd="upsert", runs=[r.to_dict() for r in runs]) == {"done": 2}
            events = [heard.get(timeout=WAIT)]
            while events[-1] != ("run", session.session_id):
                events.append(heard.get(timeout=WAIT))
            # in commit order bob's run came first: it never reached ann's listeners
            assert {sid for _event, sid in events} == {session.session_id}
            assert "a reply written elsewhere for ann" in panel.history.markup
        finally:
            kernel.close()
            panel.close()
