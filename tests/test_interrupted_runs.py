"""A run whose process died mid-reply (``kill -9``) is ``interrupted`` wherever it is shown — API, magic history,
panel, CLI — never ``running`` forever, and never sent as history. A live writer's run stays ``running``; so
does a run without a recorded writer that is newer than this process (an older version's kernel may be
writing it), while an older one reads as interrupted."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import RecordingModel
from notebook_shell import Notebook

from nbsessions import Agent, RunOutput, RunStatus, TinyDb
from nbsessions.__main__ import main
from nbsessions.panel import SessionPanel
from nbsessions.records.liveness import current_writer, why_unfinished, writer_alive

DATA = Path(__file__).resolve().parent / "data"

HANGING_WRITER = textwrap.dedent("""
    import sys, threading
    from nbsessions import Agent, FunctionModel, TinyDb

    def hang(messages):
        yield "half a rep"
        threading.Event().wait()  # never returns: the test kills this process here

    db = TinyDb(sys.argv[1])
    agent = Agent(model=FunctionModel(hang), db=db)
    stream = agent.run("the question", session_id=sys.argv[2], stream=True)
    for event in stream:
        print(stream.run.run_id, flush=True)
        break
    threading.Event().wait()
""")


@pytest.fixture
def crashed(tmp_path):
    """A file with one completed run, then one whose kernel was killed with SIGKILL while it streamed."""
    path = tmp_path / "nb.nbsessions.json"
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel(), db=db)
        first = agent.run("before the crash")
        agent.set_active_session(first.session_id)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HANGING_WRITER, str(path), first.session_id],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the writer did not start its run"
        with TinyDb(path) as db:  # while the writer lives, its run is running
            assert db.get_run(run_id).status == RunStatus.running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    return path, first.session_id, run_id


def test_a_dead_writers_run_reads_as_interrupted_and_is_never_history(crashed):
    path, session_id, run_id = crashed
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
        run = db.get_run(run_id)
        assert run.status == RunStatus.interrupted and "before the reply was complete" in run.error
        assert [r.status for r in agent.get_runs(session_id)] == [RunStatus.completed, RunStatus.interrupted]
        after = agent.run("after the crash", session_id=session_id)
    sent = [m.content for m in after.messages if m.from_history]
    assert "the question" not in sent and "before the crash" in sent


def test_the_cli_shows_it_interrupted(crashed):
    path, session_id, _ = crashed
    out = io.StringIO()
    assert main(["show", str(path), session_id[:8]], out=out) == 0
    assert "interrupted" in out.getvalue() and "running" not in out.getvalue()


def test_the_magic_history_and_the_panel_show_it_interrupted(crashed, workdir):
    path, session_id, _ = crashed
    nb = Notebook()
    try:
        nb.run(f"%agent db {path}")
        text = nb.run("%agent history").outputs[-1].data["text/plain"]
        assert "interrupted" in text and "running" not in text
    finally:
        nb.close()
    with TinyDb(path) as db:
        panel = SessionPanel(Agent(db=db))
        panel.select(session_id)
        assert "interrupted" in panel.history.markup and "running" not in panel.history.markup
        panel.close()


def test_a_live_writer_and_an_unknown_one_are_not_called_dead():
    me = current_writer()
    assert writer_alive(me) is True
    assert writer_alive({**me, "start": "1"}) is False  # same pid, another start time: a reused pid
    assert writer_alive({**me, "boot": "another-boot"}) is False
    assert writer_alive({**me, "host": "another-host"}) is None
    assert writer_alive(None) is None and writer_alive({"pid": "x"}) is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert writer_alive({**me, "pid": child.pid, "start": None}) is False


def test_a_format1_run_left_running_reads_as_interrupted_and_reading_writes_nothing(tmp_path, workdir):
    """The format-1 file cut after its first run was stored as running: its kernel died before the reply, back
    when runs recorded no writer. Every writer since records one, so it is nobody's now."""
    path = tmp_path / "old.nbsessions.json"
    lines = (DATA / "format1.nbsessions.json").read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:3]), encoding="utf-8")  # header, the session, its first run started
    before = path.read_bytes()
    with TinyDb(path) as db:
        run, = db.list_runs("s-main")
        assert run.writer is None and run.status == RunStatus.interrupted
        assert "older nbsessions" in run.error
    out = io.StringIO()
    assert main(["show", str(path), "s-main"], out=out) == 0
    assert "interrupted" in out.getvalue() and "running" not in out.getvalue()
    assert path.read_bytes() == before  # decided when read: nothing is written
    with TinyDb(path) as db:
        panel = SessionPanel(Agent(db=db))
        panel.select("s-main")
        assert "interrupted" in panel.history.markup and "running" not in panel.history.markup
        panel.close()
        after = Agent(model=RecordingModel(), db=db, add_history_to_context=True, user_id="ana").run(
            "next", session_id="s-main")
    assert not [m for m in after.messages if m.from_history]  # never sent as history


def test_a_writerless_running_run_is_interrupted_only_when_older_than_this_process(db):
    old = RunOutput(session_id="s", status=RunStatus.running, created_at=1_000_000_000.0)  # 2001
    new = RunOutput(session_id="s", status=RunStatus.running)  # now: maybe an older version's live kernel
    for run in (old, new):
        db.upsert_run(run)
    assert [r.status for r in db.list_runs("s")] == [RunStatus.interrupted, RunStatus.running]
    assert db.get_run(new.run_id).status == RunStatus.running and db.get_run(new.run_id).error is None
    assert why_unfinished(None, None) is not None and why_unfinished(None, "garbage") is not None  # never raises
