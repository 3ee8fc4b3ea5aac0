"""``python -m nbsessions copy SRC DST``: sessions and runs between any two stores, idempotent, with progress."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RecordingModel

from nbsessions import Agent, TinyDb
from nbsessions.__main__ import main
from nbsessions.db.base import BaseDb
from nbsessions.records.schema import Session

ROOT = Path(__file__).resolve().parent.parent


def fill(db: BaseDb) -> None:
    """Two users, a fork, an errored and a superseded run: everything a copy must carry over."""
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
    ann = agent.create_session("ann's", user_id="ann", session_state={"topic": "ml", "n": 1})
    for prompt in ("one", "two", "three"):
        agent.run(prompt, session_id=ann.session_id, user_id="ann", cell_id="c1" if prompt != "one" else None)
    bob = agent.create_session("bob's", user_id="bob")
    agent.run("bob asks", session_id=bob.session_id, user_id="bob")
    agent.fork_session(ann.session_id, session_name="fork")


def dump(db: BaseDb) -> dict:
    return {s.session_id: (s.to_dict(), [r.to_dict() for r in db.list_runs(s.session_id)])
            for s in db.list_sessions()}


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_copy_between_files_is_exact_and_running_it_again_changes_nothing(tmp_path, capsys):
    src, dst = tmp_path / "a.nbsessions.json", tmp_path / "b.nbsessions.json"
    with TinyDb(src) as db:
        fill(db)
        expected = dump(db)
    assert cli("copy", str(src), str(dst)) == (0, f"copied 3 sessions and 7 runs into {dst}\n")
    assert "copying: 100%" in capsys.readouterr().err  # the progress bar, on stderr
    with TinyDb(dst) as db:
        assert dump(db) == expected
    assert cli("copy", str(src), str(dst), "--no-progress")[0] == 0
    with TinyDb(dst) as db:
        assert dump(db) == expected


def test_a_session_used_in_the_target_since_the_last_copy_is_not_overwritten(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        fill(db)
    cli("copy", str(src), str(dst), "--no-progress")
    with TinyDb(dst) as db:
        ann = next(s for s in db.list_sessions() if s.session_name == "ann's")
        db.update_session(ann.session_id, state_patch={"n": 2})
    code, text = cli("copy", str(src), str(dst), "--no-progress")
    assert code == 0 and text.startswith("copied 0 sessions and 0 runs; 1 kept the target's newer name and state")
    with TinyDb(dst) as db:
        assert db.get_session(ann.session_id).session_state == {"topic": "ml", "n": 2}


def test_the_targets_rename_and_state_survive_a_copy_after_the_file_gained_a_run(tmp_path):
    """The file's session is newer only because it gained a run: its fields did not change, the target's did."""
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        agent = Agent(model=RecordingModel(), db=db)
        sid = agent.run("first").session_id
    cli("copy", str(src), str(dst), "--no-progress")
    with TinyDb(dst) as db:
        db.update_session(sid, session_name="renamed there", state_patch={"kept": True})
        Agent(model=RecordingModel(), db=db).run("made in the target", session_id=sid)
    with TinyDb(src) as db:
        Agent(model=RecordingModel(), db=db).run("second", session_id=sid)
    code, text = cli("copy", str(src), str(dst), "--no-progress")
    assert code == 0 and text.startswith("copied 0 sessions and 1 run; ")
    with TinyDb(dst) as db:
        session = db.get_session(sid)
        assert (session.session_name, session.session_state) == ("renamed there", {"kept": True})
        assert sorted(r.input for r in db.list_runs(sid)) == ["first", "made in the target", "second"]
    with TinyDb(src) as db:  # now the file's fields change and the target's do not: the file's win
        db.update_session(sid, session_name="renamed here")
    assert cli("copy", str(src), str(dst), "--no-progress")[1].startswith("copied 1 session and 0 runs")
    with TinyDb(dst) as db:
        assert db.get_session(sid).session_name == "renamed here"
        assert len(db.list_runs(sid)) == 3


def test_an_unchanged_copy_into_a_file_appends_nothing(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        fill(db)
    cli("copy", str(src), str(dst), "--no-progress")
    before = dst.read_bytes()
    assert cli("copy", str(src), str(dst), "--no-progress")[1].startswith("copied 0 sessions and 0 runs into")
    assert dst.read_bytes() == before


def test_a_session_of_another_user_in_the_target_is_skipped_and_named(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        db.create_session(Session(session_id="shared-id", session_name="mine", user_id="ann"))
    with TinyDb(dst) as db:
        db.create_session(Session(session_id="shared-id", session_name="theirs", user_id="bob"))
    code, text = cli("copy", str(src), str(dst), "--no-progress")
    assert code == 0 and "skipped 1 that belong to another user in the target (mine)" in text
    with TinyDb(dst) as db:
        assert db.get_session("shared-id").session_name == "theirs"


def test_owner_gives_unowned_sessions_to_a_user(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        agent = Agent(model=RecordingModel(), db=db)
        sid = agent.run("notebook question").session_id
        db.create_session(Session(session_name="bob's own", user_id="bob"))
    code, text = cli("copy", str(src), str(dst), "--owner", "alice", "-u", "alice", "--no-progress")
    assert code == 0 and text.startswith("copied 1 session and 1 run into")
    with TinyDb(dst) as db:
        assert [s.session_id for s in db.list_sessions(user_id="alice")] == [sid]
        assert [r.user_id for r in db.list_runs(sid)] == ["alice"]
        assert db.list_sessions(user_id="bob") == []


def test_copy_of_one_users_sessions(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        fill(db)
    copied = cli("copy", str(src), str(dst), "-u", "bob", "--no-progress")[1]
    assert copied.startswith("copied 1 session and 1 run into")
    with TinyDb(dst) as db:
        assert [s.user_id for s in db.list_sessions()] == ["bob"]


def test_a_missing_source_is_one_line_and_creates_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nbsessions", "copy", str(tmp_path / "nope.json"),
                             str(tmp_path / "out.json")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no such database file" in result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.postgres
def test_file_to_postgres_and_back_round_trips_and_repeats_as_a_no_op(tmp_path, postgres_server, postgres_url,
                                                                       capsys):
    from pg_server import PASSWORD, PASSWORD_USER

    from nbsessions.db.postgres import PostgresDb

    src, back = tmp_path / "notebook.nbsessions.json", tmp_path / "back.nbsessions.json"
    with TinyDb(src) as db:
        fill(db)
        expected = dump(db)
    dbname = postgres_url.split("/")[3].split("?")[0]
    url = postgres_server.url(dbname, user=PASSWORD_USER, password=PASSWORD)
    for copied in ("3 sessions and 7 runs", "0 sessions and 0 runs"):  # the second copy finds everything there
        code, text = cli("copy", str(src), url)
        assert code == 0 and text.startswith(f"copied {copied} into postgresql://ann:***@/")
        assert PASSWORD not in text + capsys.readouterr().err
        with PostgresDb(postgres_url) as db:
            assert dump(db) == expected
    assert cli("copy", url, str(back), "--no-progress")[0] == 0
    with TinyDb(back) as db:
        assert dump(db) == expected
    code, text = cli("ls", url, "--plain")
    assert code == 0 and "ann's" in text and "bob's" in text


@pytest.mark.postgres
def test_moving_in_as_the_readme_says_with_jupyterhub_user(workdir, monkeypatch, postgres_url):
    """README "Moving in": a notebook file's sessions copied with --owner are alice's on the hub, and stay so."""
    from notebook_shell import Notebook, one_red_line

    from nbsessions.db.postgres import PostgresDb

    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    laptop = Notebook()  # the notebook as it was, on a file
    try:
        assert laptop.run("%%agent --new analysis\nWhat is in the data?").result.success
    finally:
        laptop.close()
    (file,) = workdir.glob("*.json")

    def copy(*extra: str) -> str:
        result = subprocess.run([sys.executable, "-m", "nbsessions", "copy", str(file), postgres_url,
                                 "--no-progress", *extra], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert copy("--owner", "alice").startswith("copied 1 session and 1 run into")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("NBSESSIONS_DB_URL", postgres_url)
    alice = Notebook()
    try:
        assert "analysis" in alice.run("%agent sessions").outputs[0].data["text/plain"]
        assert alice.run("%agent use analysis").result.success
        assert alice.run("%%agent\nAnd the outliers?").result.success
        assert alice.run("%agent rename analysis on the hub").result.success
    finally:
        alice.close()
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    bob = Notebook()
    try:
        assert "no session" in one_red_line(bob.run("%agent use analysis"))
    finally:
        bob.close()
    monkeypatch.delenv("JUPYTERHUB_USER")
    monkeypatch.delenv("NBSESSIONS_DB_URL")
    laptop = Notebook()  # the file gains a run after the move; copying it again merges, keeping the hub's name
    try:
        assert laptop.run("%%agent\nOne more on the laptop").result.success
    finally:
        laptop.close()
    assert copy("--owner", "alice").startswith("copied 0 sessions and 1 run; ")
    with PostgresDb(postgres_url) as db:
        (session,) = db.list_sessions(user_id="alice")
        assert session.session_name == "analysis on the hub"
        inputs = [r.input for r in db.list_runs(session.session_id)]
        assert sorted(inputs) == ["And the outliers?", "One more on the laptop", "What is in the data?"]
        assert all(r.user_id == "alice" for r in db.list_runs(session.session_id))
