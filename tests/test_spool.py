"""Final writes the store never answered before the process exited: kept on disk, stored by the next process
that opens the store for writing — once, and never over a newer state (nbsessions/runs/core/spool.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_bad_input_files import _private_mounts
from test_secrets import KEY, files_under, leaked
from worker_protocol import ROOT, Worker

from nbsessions import Agent, TinyDb
from nbsessions.db.base import BaseDb
from nbsessions.records.liveness import ENDED, current_writer
from nbsessions.records.schema import RunOutput, RunStatus, Session
from nbsessions.runs.core import spool
from nbsessions.runs.core.run_writes import FinalWrite

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch) -> Path:
    """Each test its own state folder (workers inherit it): spools never leak between tests or into ~."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def spool_files() -> list[Path]:
    return sorted(spool.folder().glob("*.jsonl")) if spool.folder().exists() else []


def check_private(path: Path) -> None:
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- a real process whose run ends while PostgreSQL is down -----------------------------------------------------
@pytest.mark.postgres
def test_a_run_that_ended_while_postgresql_was_down_is_stored_by_the_next_process(postgres_server, postgres_url,
                                                                                 state_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    from pg_server import PASSWORD, PASSWORD_USER

    from nbsessions.db.postgres import PostgresDb

    dbname = postgres_url.rsplit("/", 1)[1].split("?")[0]
    url = postgres_server.url(dbname, user=PASSWORD_USER, password=PASSWORD)
    worker = Worker("spool_worker.py", url)
    session = worker.ready["session"]
    assert worker.read() == {"replying": True}
    postgres_server.stop()
    try:
        worker.send(go=True)
        ended = worker.read()
        assert ended["ended"] == "completed" and ended["pending"] == 1
        worker.close()  # exits normally: the store gets its last chance, then the write is kept on disk
        [kept] = spool_files()
        check_private(kept)
        text = kept.read_text()
        assert "teal it is (key [redacted])" in text and not leaked(files_under(state_home))
        assert not any(PASSWORD[i:i + 8] in text for i in range(len(PASSWORD) - 7))
    finally:
        postgres_server.start_again()
    with PostgresDb(postgres_url) as other:  # another user of the same database: not its spool
        Agent(db=other)
        assert other.get_run(ended["run"]).status == RunStatus.interrupted and spool_files() == [kept]
    with PostgresDb(url, timeout=1) as db:
        before = db.get_run(ended["run"])
        assert before.status == RunStatus.interrupted and before.error == ENDED  # what a reader saw until now
        postgres_server.stop()
        try:
            Agent(db=db)  # the store went away again: the kept write waits for the next time
            assert spool_files() == [kept] and "teal it is" in kept.read_text()
        finally:
            postgres_server.start_again()
        Agent(db=db)  # opening the store for writing stores what was kept
        run = db.get_run(ended["run"])
        assert run.status == RunStatus.completed and run.content == "teal it is (key [redacted])"
        assert db.get_session(session).session_state == {"keep": 1, "colour": "teal", "told": "key [redacted]"}
    assert spool_files() == []


# -- what a replay stores, and what it leaves alone -------------------------------------------------------------
@pytest.fixture(scope="module")
def dead_writer() -> dict[str, Any]:
    """The writer record of a process that has ended (a run it left ``running`` reads as interrupted)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "import json; from nbsessions.records.liveness import "
                           "current_writer as w; print(json.dumps(w()))"], capture_output=True, text=True,
                          check=True, env=env)
    return json.loads(done.stdout)


def keep(db: BaseDb, session_id: str, writer: dict[str, Any], content: str,
         state: dict[str, Any] | None = None) -> RunOutput:
    """A run stored as running by ``writer``, and its completed outcome kept on disk as an exiting process does."""
    run = RunOutput(session_id=session_id, status=RunStatus.running, writer=writer, input=f"asked for {content}")
    db.upsert_run(run)
    ended = RunOutput.from_dict(run.to_dict())
    ended.status, ended.content = RunStatus.completed, content
    with pytest.warns(RuntimeWarning, match=r"never answered; it is kept in .*\.jsonl until a process opens"):
        FinalWrite(db, ended, dict(state or {}), []).keep()
    return ended


def test_a_replay_never_writes_over_a_newer_state(tmp_path, dead_writer):
    with TinyDb(tmp_path / "s.json") as db:
        live = db.create_session(Session()).session_id
        deleted = db.create_session(Session()).session_id
        waiting = keep(db, live, dead_writer, "kept", {"colour": "teal"})
        gone = keep(db, deleted, dead_writer, "of a deleted session", {"colour": "red"})
        newer = keep(db, live, dead_writer, "kept, but stored later by its own process")
        newer.content = "the newer reply"
        db.upsert_run(newer)
        other = keep(db, live, dead_writer, "continued elsewhere")
        db.upsert_run(RunOutput.from_dict({**other.to_dict(), "status": "running", "content": "",
                                           "writer": current_writer()}))  # another process owns it now
        db.delete_session(deleted)
        [kept] = spool_files()
        check_private(kept)
        assert len(kept.read_text().splitlines()) == 4
        Agent(db=db)
        assert db.get_run(waiting.run_id).status == RunStatus.completed
        assert db.get_run(waiting.run_id).content == "kept"
        assert db.get_session(live).session_state == {"colour": "teal"}
        assert db.get_session(deleted) is None and db.get_run(gone.run_id) is None
        assert db.get_run(newer.run_id).content == "the newer reply"
        assert db.get_run(other.run_id).status == RunStatus.running
        assert spool_files() == []  # each stored or no longer applicable: none left


def test_state_changes_kept_after_their_run_was_stored_are_still_applied(tmp_path, dead_writer):
    """The run's write went through but not the state's (at exit, or in a replay killed between the two)."""
    with TinyDb(tmp_path / "s.json") as db:
        session = db.create_session(Session(session_state={"a": 0})).session_id
        run = RunOutput(session_id=session, status=RunStatus.completed, writer=dead_writer, content="stored")
        db.upsert_run(run)
        final = FinalWrite(db, run, {"a": 1}, [])
        final.run_stored = True  # as ``attempt`` leaves it when only the state write failed
        with pytest.warns(RuntimeWarning, match="never answered"):
            final.keep()
        replayed = keep(db, session, dead_writer, "replayed", {"b": 2})
        db.upsert_run(replayed)  # the killed replay had stored it, and noted so:
        [path] = spool_files()
        entry_id = json.loads(path.read_text().splitlines()[-1])["id"]
        with open(path, "a") as f:
            f.write(json.dumps({"v": spool.VERSION, "id": entry_id, "step": "stored"}) + "\n")
        Agent(db=db)
        assert db.get_session(session).session_state == {"a": 1, "b": 2}
        assert spool_files() == []


def test_unreadable_lines_are_skipped_with_one_warning_and_the_rest_is_stored(tmp_path, dead_writer):
    with TinyDb(tmp_path / "s.json") as db:
        session = db.create_session(Session()).session_id
        first = keep(db, session, dead_writer, "first")
        [path] = spool_files()
        with open(path, "a") as f:
            f.write('not json\n[1, 2]\n{"v": 99, "id": "x", "run": {}}\n{"v": 1, "id": 7}\n"text"\n')
        second = keep(db, session, dead_writer, "second")
        with open(path, "a") as f:
            f.write('{"v": 1, "id": "torn", "run": {"run_id": ')  # a line cut short
        with pytest.warns(RuntimeWarning) as caught:
            Agent(db=db)
        assert [str(w.message) for w in caught] == [f"6 unreadable line(s) in {path} were skipped (not a kept "
                                                    "final write)"]
        assert [db.get_run(r.run_id).content for r in (first, second)] == ["first", "second"]
        assert spool_files() == []


def test_read_only_opens_write_nothing_and_leave_the_spool(tmp_path, dead_writer):
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        run = keep(db, db.create_session(Session()).session_id, dead_writer, "kept")
    before = path.read_bytes()
    with TinyDb(path, read_only=True) as reader:
        Agent(db=reader)  # the panel over a reader, the sidebar's server
        assert reader.get_run(run.run_id).status == RunStatus.interrupted
    from nbsessions.__main__ import main

    assert main(["ls", str(path)]) == 0
    assert path.read_bytes() == before and len(spool_files()) == 1


@pytest.mark.parametrize("lock", ["flock", "filelock"])
def test_two_processes_replaying_one_spool_at_once_store_each_write_once(tmp_path, dead_writer, lock, monkeypatch):
    monkeypatch.setenv("SPOOL_LOCK", lock)
    path, log = tmp_path / "s.json", tmp_path / "writes.log"
    for round_ in range(3):
        with TinyDb(path) as db:
            sessions = [db.create_session(Session()).session_id for _ in range(4)]
            runs = [keep(db, sessions[i % 4], dead_writer, f"round {round_} reply {i}", {f"r{round_}k{i}": i})
                    for i in range(12)]
        log.unlink(missing_ok=True)
        workers = [Worker("spool_replayer.py", path, log) for _ in range(4)]
        try:
            for worker in workers:
                worker.send(go=True)
            assert [w.read() for w in workers] == [{"done": True}] * 4
        finally:
            for worker in workers:
                worker.close()
        lines = log.read_text().splitlines()
        assert sorted(lines) == sorted([f"run {r.run_id} True" for r in runs]
                                       + [f"state {r.session_id} ['r{round_}k{i}']" for i, r in enumerate(runs)])
        with TinyDb(path, read_only=True) as db:
            assert [db.get_run(r.run_id).content for r in runs] == [r.content for r in runs]
            for session in sessions:
                assert len(db.get_session(session).session_state) == 3
        assert spool_files() == []


@pytest.mark.postgres
def test_the_sidebars_server_reads_a_database_without_storing_what_was_kept(postgres_url, dead_writer, tmp_path):
    from nbsessions.db.postgres import PostgresDb
    from nbsessions.server.stores import NotebookStore, StoreCache

    with PostgresDb(postgres_url) as db:
        run = keep(db, db.create_session(Session()).session_id, dead_writer, "kept")
    cache = StoreCache()
    try:
        agent = cache.agent(NotebookStore("n.ipynb", tmp_path / "n.nbsessions.json", postgres_url))
        assert agent.db.get_run(run.run_id).status == RunStatus.interrupted and len(spool_files()) == 1
    finally:
        cache.close()
    with PostgresDb(postgres_url) as db:
        Agent(db=db)  # a kernel opening it does
        assert db.get_run(run.run_id).content == "kept" and spool_files() == []


# -- a TinyDB file on a full disk ------------------------------------------------------------------------------
def test_a_run_that_ended_on_a_full_disk_is_stored_by_the_next_process_once_there_is_room(tmp_path, state_home):
    """A real full filesystem: a 1 MB tmpfs in a private mount namespace, filled while the model replies."""
    unshare = _private_mounts()
    if unshare is None:
        pytest.skip("no private mount namespace (unshare) here: a full disk needs a tmpfs of its own")
    disk = tmp_path / "disk"
    disk.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]), "OPENAI_API_KEY": KEY}
    done = subprocess.run([*unshare, sys.executable, str(HERE / "full_disk_spool.py"), str(disk)],
                          capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0 and "mount" in done.stderr and "nbsessions" not in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ended"]["ended"] == "completed" and report["ended"]["pending"] == 1
    assert len(report["kept"]) == 1 and report["kept"][0].endswith(".jsonl")
    assert report["before"]["status"] == "interrupted"  # the file as the exited process left it
    assert report["after"] == {"status": "completed", "content": "teal it is (key [redacted])" + "." * 20000,
                               "state": {"keep": 1, "colour": "teal", "told": "key [redacted]"}}


def test_a_write_kept_while_a_replay_holds_the_file_lands_in_the_file_that_remains(tmp_path):
    """An exiting process appending while a replay ends (and removes the file) must not write to the old one."""
    key = f"tinydb {tmp_path / 's.json'}"
    first = {"v": spool.VERSION, "id": "first", "run": {}}
    spool.append(key, [first])
    path = spool.path_for(key)
    inode = os.stat(path).st_ino
    with spool._locked(path, create=False) as fd:
        assert fd is not None
        appender = threading.Thread(target=spool.append, args=(key, [{**first, "id": "second"}]))
        appender.start()
        waiting = time.monotonic() + 60
        while not blocked_on(inode) and appender.is_alive() and time.monotonic() < waiting:
            pass  # until the kernel lists the appender as waiting for the lock (/proc/locks)
        assert blocked_on(inode), "the appender never waited for the replay's lock"
        path.unlink()  # what a replay does when nothing is left
    appender.join()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["second"]


def blocked_on(inode: int) -> bool:
    """Whether some flock waits on that inode (a ``->`` line of /proc/locks)."""
    with open("/proc/locks") as f:
        return any(line.split()[1] == "->" and line.split()[6].endswith(f":{inode}") for line in f)
